// `persistence` on a service, asserted by what the ruleset does to packets (the fake kernel's tracer
// remembers what the packet path writes, as the kernel's dynamic maps do).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { diff } from "../../src/nft/diff.ts";
import { buildModel, desiredState, allHealthy } from "../../src/plan/desired.ts";
import { planServices, type ServicesPlan } from "../../src/plan/services.ts";
import type { Facts, ServiceHealth } from "../../src/plan/types.ts";
import { dnatOf, kernelWith, tcp, trace, type Packet } from "./tracer-support.ts";

const SCHEDULERS = ["round-robin", "random", "least-conn", "source-hash", "maglev"] as const;
const facts: Facts = { interfaces: new Map() };

const config = (scheduler: string, listen = "203.0.113.10:80", backends?: string[], persistence = "5m") =>
  parseConfig(`version: 1
services:
  web:
    listen: "${listen}"
    scheduler: ${scheduler}
    persistence: ${persistence}
    backends:
${(backends ?? ["198.51.100.11:80", "198.51.100.12:80", "198.51.100.13:80"]).map((b) => `      - { address: "${b}" }`).join("\n")}
`);

const planOf = (c: ReturnType<typeof config>, h: ServiceHealth = {}): ServicesPlan => {
  const p = planServices(c, h, facts);
  assert.ok(p);
  return p;
};
const update = (c: ReturnType<typeof config>, after: ServiceHealth, before: ServiceHealth = {}) =>
  diff(buildModel(null, planOf(c, before), undefined), buildModel(null, planOf(c, after), undefined)).script;

/** A new connection as the kernel sees it (remembering what `update @persist` writes). */
const connect = (k: ReturnType<typeof kernelWith>, p: Packet, numgen: number) =>
  trace(k.ruleset, p, { numgen, remember: true, hooks: ["prerouting", "postrouting"] });

for (const scheduler of SCHEDULERS) {
  test(`${scheduler}: a client keeps its backend across new connections; others are balanced`, () => {
    const c = config(scheduler);
    const k = kernelWith(desiredState(c, allHealthy(c), facts).nft);
    const first = connect(k, tcp("192.0.2.7", "203.0.113.10", 80), 0);
    const backend = dnatOf(first);
    assert.ok(backend);
    for (let n = 1; n < 12; n++) {
      const t = connect(k, tcp("192.0.2.7", "203.0.113.10", 80, { sport: 40000 + n }), n);
      assert.equal(dnatOf(t), backend, `connection ${n}`);
      // Counted at its backend like any connection, and the borrowed priority is given back.
      assert.ok(
        t.counters.includes(`@svc_conns4 203.0.113.10 . tcp . 80 . ${(backend ?? "").replace(":", " . ")}`),
      );
      assert.equal(t.priority, 0);
    }
    // Other clients go where the scheduler sends them: over 30 of them, more than one backend.
    const seen = new Set<string | null>();
    for (let n = 0; n < 30; n++)
      seen.add(dnatOf(connect(k, tcp(`192.0.2.${100 + n}`, "203.0.113.10", 80), n)));
    assert.ok(seen.size > 1, [...seen].join(", "));
  });
}

test("a remembered backend that goes down, drains or enters maint keeps nobody; the new one is remembered", () => {
  const c = config("round-robin");
  const k = kernelWith(desiredState(c, allHealthy(c), facts).nft);
  const client = (sport: number) => tcp("192.0.2.7", "203.0.113.10", 80, { sport });
  const was = dnatOf(connect(k, client(1), 0));
  assert.equal(was, "198.51.100.11:80");
  for (const h of [{ up: false }, { up: true, weight: 0 }]) {
    const k2 = kernelWith(desiredState(c, allHealthy(c), facts).nft);
    connect(k2, client(1), 0);
    const script = update(c, { web: { "198.51.100.11:80": h } });
    // Only the live-backend map and the slots change: the clients' memory is the packet path's.
    assert.ok(!/(map|element) inet nflb svc_web_persist_[0-9a-f]{8}/.test(script), script);
    k2.apply(script);
    const moved = dnatOf(connect(k2, client(2), 1));
    assert.notEqual(moved, was);
    assert.ok(moved);
    // From now on it stays there, whatever the rotation says.
    for (let n = 3; n < 8; n++) assert.equal(dnatOf(connect(k2, client(n), n)), moved, JSON.stringify(h));
    const last = connect(k2, client(9), 2);
    assert.equal(last.priority, 0);
  }
});

test("no backend up: the connection is dropped and the borrowed priority given back first", () => {
  const c = config("round-robin");
  const k = kernelWith(desiredState(c, allHealthy(c), facts).nft);
  connect(k, tcp("192.0.2.7", "203.0.113.10", 80), 0);
  const down = { up: false };
  k.apply(
    update(c, { web: { "198.51.100.11:80": down, "198.51.100.12:80": down, "198.51.100.13:80": down } }),
  );
  const t = connect(k, tcp("192.0.2.7", "203.0.113.10", 80, { sport: 41000 }), 0);
  assert.equal(t.verdict, "drop");
  assert.equal(t.priority, 0);
});

test("IPv6 clients are remembered by their /64", () => {
  const c = config("round-robin", "[2001:db8:203::10]:80", [
    "[2001:db8:51::11]:80",
    "[2001:db8:51::12]:80",
    "[2001:db8:51::13]:80",
  ]);
  const k = kernelWith(desiredState(c, allHealthy(c), facts).nft);
  const v6 = (src: string, n: number) =>
    connect(k, tcp(src, "2001:db8:203::10", 80, { sport: 40000 + n }), n);
  const backend = dnatOf(v6("2001:db8:1:2::7", 0));
  assert.equal(dnatOf(v6("2001:db8:1:2:aaaa::99", 1)), backend);
  assert.equal(dnatOf(v6("2001:db8:1:2::8", 2)), backend);
  assert.notEqual(dnatOf(v6("2001:db8:1:3::7", 1)), backend);
});

test("a packet whose priority is already set is balanced without memory, its priority untouched", () => {
  const c = config("round-robin");
  const k = kernelWith(desiredState(c, allHealthy(c), facts).nft);
  connect(k, tcp("192.0.2.7", "203.0.113.10", 80), 0);
  const t = connect(k, tcp("192.0.2.7", "203.0.113.10", 80, { sport: 40001, priority: 0x10002 }), 1);
  assert.equal(dnatOf(t), "198.51.100.12:80");
  assert.equal(t.priority, 0x10002);
});

test("the memory starts afresh when the backend list changes (a reload), not on health changes", () => {
  const name = (c: ReturnType<typeof config>) =>
    /map (svc_web_persist_[0-9a-f]{8})/.exec(desiredState(c, allHealthy(c), facts).nft)?.[1];
  const a = config("maglev");
  const b = config("maglev", undefined, ["198.51.100.11:80", "198.51.100.13:80"]);
  assert.ok(name(a));
  assert.notEqual(name(a), name(b));
  assert.equal(name(a), name(config("maglev")));
  // The timeout lives in the rules: changing it rewrites chains, never the table.
  const d = diff(
    buildModel(null, planOf(a), undefined),
    buildModel(null, planOf(config("maglev", undefined, undefined, "30s")), undefined),
  );
  assert.deepEqual(d.replaced, []);
  assert.match(d.script, /timeout 30s/);
});

test("without persistence nothing of it is installed", () => {
  const c = parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:80
    backends: [{ address: 198.51.100.11:80 }]
`);
  const nft = desiredState(c, allHealthy(c), facts).nft;
  assert.ok(!nft.includes("persist"));
  assert.ok(!nft.includes("meta priority"));
});

/** web: persistence 5m, one regular backend (.11) and one backup (.99). */
const withBackup = () =>
  parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:80
    persistence: 5m
    backends:
      - { address: 198.51.100.11:80 }
      - { address: 198.51.100.99:80, backup: true }
`);

test("backups: a client remembered on a backup goes back to a regular backend that returned", () => {
  const c = withBackup();
  const k = kernelWith(desiredState(c, allHealthy(c), facts).nft);
  const client = (n: number) => tcp("192.0.2.7", "203.0.113.10", 80, { sport: 40000 + n });
  assert.equal(dnatOf(connect(k, client(0), 0)), "198.51.100.11:80");
  const down = { web: { "198.51.100.11:80": { up: false } } };
  k.apply(update(c, down));
  assert.equal(dnatOf(connect(k, client(1), 0)), "198.51.100.99:80");
  assert.equal(dnatOf(connect(k, client(2), 0)), "198.51.100.99:80");
  k.apply(update(c, {}, down));
  assert.equal(dnatOf(connect(k, client(3), 0)), "198.51.100.11:80");
  assert.equal(dnatOf(connect(k, client(4), 0)), "198.51.100.11:80");
});

test("nflb explain: names the persistence and a backup pool, and still traces the scheduler", async () => {
  const { explain } = await import("../../src/explain/explain.ts");
  const { formatExplanation } = await import("../../src/explain/format.ts");
  const { parseQuery } = await import("../../src/explain/packet.ts");
  const c = withBackup();
  const q = parseQuery({ src: "192.0.2.7", dst: "203.0.113.10", proto: "tcp", port: "80" });
  assert.ok(!("error" in q));
  const health = { uplinks: {}, services: { web: { "198.51.100.11:80": { up: false } } } };
  const text = formatExplanation(explain(c, q, { health, healthSource: "test", facts }));
  assert.match(text, /persistence 5m: a client goes back to the backend it got/);
  assert.match(text, /the backups take new connections/);
  assert.match(text, /198\.51\.100\.99:80/);
});
