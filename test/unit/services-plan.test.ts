import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { leastConnSequence, planServices, type ServicesPlan } from "../../src/plan/services.ts";
import { maglevSize } from "../../src/plan/maglev.ts";
import type { Facts, ServiceHealth } from "../../src/plan/types.ts";

const count = (xs: string[]) =>
  xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {});

function config(scheduler: string, weights = [1, 1, 1], extra = "") {
  const backends = weights
    .map((w, i) => `      - { address: 198.51.100.${11 + i}:80, weight: ${w} }`)
    .join("\n");
  return parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:80
    scheduler: ${scheduler}
${extra}    backends:
${backends}
`);
}

function plan(
  scheduler: string,
  weights?: number[],
  health: ServiceHealth = {},
  facts?: Facts,
): ServicesPlan {
  const p = planServices(config(scheduler, weights), health, facts);
  assert.ok(p);
  return p;
}

const B = (i: number) => `198.51.100.${10 + i}:80`;

test("no services key: no plan", () => {
  const c = parseConfig(`version: 1\nuplinks:\n  isp1: { interface: wan1, gateway: 100.64.1.1 }\n`);
  assert.equal(planServices(c, {}), null);
});

test("round-robin is the exact rotation, interleaved by weight", () => {
  assert.deepEqual(plan("round-robin").services[0]?.slots, [B(1), B(2), B(3)]);
  const w = plan("round-robin", [3, 1, 1]).services[0]?.slots ?? [];
  assert.deepEqual(count(w), { [B(1)]: 3, [B(2)]: 1, [B(3)]: 1 });
  assert.notEqual(w[0], w[1], "weights are interleaved, not blocks");
});

test("random uses contiguous blocks in proportion to weight", () => {
  assert.deepEqual(plan("random", [3, 1, 1]).services[0]?.slots, [B(1), B(1), B(1), B(2), B(3)]);
});

test("down and drained backends get no slots and report their state", () => {
  const p = plan("round-robin", [1, 1, 0], { web: { [B(1)]: { up: false }, [B(2)]: { up: true } } });
  const s = p.services[0];
  assert.deepEqual(
    s?.backends.map((b) => [b.key, b.state, b.weight]),
    [
      [B(1), "down", 0],
      [B(2), "up", 1],
      [B(3), "draining", 0],
    ],
  );
  assert.deepEqual(s?.slots, [B(2)]);
  const drained = plan("round-robin", [1, 1, 1], { web: { [B(2)]: { up: true, weight: 0 } } });
  assert.equal(drained.services[0]?.backends[1]?.state, "draining");
  assert.deepEqual(drained.services[0]?.slots, [B(1), B(3)]);
});

test("nothing live: no slots", () => {
  const p = plan("maglev", [1, 1], { web: { [B(1)]: { up: false }, [B(2)]: { up: true, weight: 0 } } });
  assert.deepEqual(p.services[0]?.slots, []);
});

test("source-hash: a failure re-deals only the failed backend's buckets", () => {
  const before = plan("source-hash").services[0]?.slots ?? [];
  const after = plan("source-hash", undefined, { web: { [B(2)]: { up: false } } }).services[0]?.slots ?? [];
  assert.equal(before.length, 1024);
  assert.equal(after.length, 1024);
  for (let i = 0; i < before.length; i++) {
    if (before[i] !== B(2)) assert.equal(after[i], before[i], `bucket ${i} moved`);
    else assert.notEqual(after[i], B(2));
  }
});

test("maglev: table size follows the configured backend count, not the live one", () => {
  const w10 = Array<number>(10).fill(1);
  const all = plan("maglev", w10).services[0]?.slots ?? [];
  assert.equal(all.length, maglevSize(10));
  const one = plan("maglev", w10, { web: { [B(4)]: { up: false } } }).services[0]?.slots ?? [];
  assert.equal(one.length, all.length);
  let moved = 0;
  let others = 0;
  for (let i = 0; i < all.length; i++) {
    if (all[i] === B(4)) continue;
    others++;
    if (one[i] !== all[i]) moved++;
  }
  assert.ok(moved / others < 0.01, `moved ${moved}/${others}`);
});

test("least-conn fills the least-loaded backend first, relative to weight", () => {
  const seq = leastConnSequence(
    [
      { name: "a", weight: 1, connections: 15 },
      { name: "b", weight: 1, connections: 15 },
      { name: "c", weight: 1, connections: 0 },
    ],
    40,
  );
  assert.deepEqual(seq.slice(0, 15), Array<string>(15).fill("c"));
  assert.deepEqual(count(seq.slice(15, 30)), { a: 5, b: 5, c: 5 });
  const weighted = leastConnSequence(
    [
      { name: "a", weight: 2, connections: 10 },
      { name: "b", weight: 1, connections: 2 },
    ],
    4,
  );
  // a: 10/2 = 5 per weight, b: 2/1: b until 5, with a taking ties (larger weight)
  assert.deepEqual(weighted, ["b", "b", "b", "a"]);
});

test("least-conn plans from the connection counts in the health view", () => {
  const p = plan("least-conn", [1, 1, 1], {
    web: { [B(1)]: { up: true, connections: 15 }, [B(2)]: { up: true, connections: 15 } },
  });
  const s = p.services[0];
  assert.equal(s?.slots.length, 256);
  assert.deepEqual(s?.slots.slice(0, 15), Array<string>(15).fill(B(3)));
  assert.equal(s?.backends[0]?.connections, 15);
});

test("IPv6 services and hairpin interfaces from facts", () => {
  const c = parseConfig(`version: 1
services:
  dns:
    listen: "[2001:db8:203::10]:53"
    protocol: udp
    snat: true
    backends:
      - { address: "[2001:db8:51::11]:5353" }
`);
  const facts: Facts = {
    interfaces: new Map([
      ["lo", { name: "lo", up: true, addresses: [] }],
      ["srv0", { name: "srv0", up: true, addresses: [] }],
      ["lan0", { name: "lan0", up: true, addresses: [] }],
    ]),
  };
  const p = planServices(c, {}, facts);
  assert.deepEqual(p?.hairpinIfaces, ["lan0", "srv0"]);
  const s = p?.services[0];
  assert.equal(s?.family, 6);
  assert.equal(s?.vip.text, "2001:db8:203::10");
  assert.equal(s?.backends[0]?.port, 5353);
  assert.equal(s?.protocol, "udp");
  assert.equal(s?.snat, true);
});
