// The services' nft ruleset, asserted by what it does to packets (the tracer of src/nft/ruleset).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { nftJhash } from "../../src/nft/ruleset/jhash.ts";
import { ipv6ToInt, toBytes } from "../../src/nft/ruleset/values.ts";
import { allHealthy, buildModel, desiredState } from "../../src/plan/desired.ts";
import { planServices, type ServicesPlan } from "../../src/plan/services.ts";
import type { Facts, ServiceHealth } from "../../src/plan/types.ts";
import { backendCounters } from "../../src/plan/nft-services.ts";
import { diff } from "../../src/nft/diff.ts";
import { dnatOf, kernelWith, sharesBy, tcp, trace, traceAll, udp } from "./tracer-support.ts";

const cfg = parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:80
    scheduler: round-robin
    backends:
      - { address: 198.51.100.11:80 }
      - { address: 198.51.100.12:8080, weight: 2 }
  dns:
    listen: "[2001:db8:203::10]:53"
    protocol: udp
    scheduler: source-hash
    snat: true
    backends:
      - { address: "[2001:db8:51::11]:53" }
      - { address: "[2001:db8:51::12]:53" }
`);
const facts: Facts = { interfaces: new Map([["srv0", { name: "srv0", up: true, addresses: [] }]]) };
const planOf = (h: ServiceHealth = {}): ServicesPlan => {
  const p = planServices(cfg, h, facts);
  assert.ok(p);
  return p;
};
/** The transaction that turns `before` into `after` (only the services' objects in both). */
const update = (after: ServicesPlan, before: ServicesPlan): string[] =>
  diff(buildModel(null, before, undefined), buildModel(null, after, undefined))
    .script.split("\n")
    .filter(Boolean);
const table = () => desiredState(cfg, allHealthy(cfg), facts).nft;
const web = (more = {}) => tcp("192.0.2.7", "203.0.113.10", 80, more);
const dns = (src = "2001:db8:1::7", more = {}) => udp(src, "2001:db8:203::10", 53, more);

test("a connection to a VIP:port is DNATed to a backend, from the LAN and from the router itself", () => {
  const k = kernelWith(table());
  for (const path of ["forward", "output"] as const) {
    const rotation = traceAll(k.ruleset, web({ path }), {
      hooks: [path === "output" ? "output" : "prerouting"],
    });
    assert.deepEqual(
      rotation.map(dnatOf),
      ["198.51.100.12:8080", "198.51.100.11:80", "198.51.100.12:8080"],
      path,
    );
    assert.equal(dnatOf(trace(k.ruleset, dns("2001:db8:1::7", { path }))) !== null, true);
  }
  // Another port, protocol or address of the VIP is none of the services' business.
  assert.equal(dnatOf(trace(k.ruleset, web({ dport: 81 }))), null);
  assert.equal(dnatOf(trace(k.ruleset, udp("192.0.2.7", "203.0.113.10", 80))), null);
  assert.equal(dnatOf(trace(k.ruleset, dns("2001:db8:1::7", { daddr: "2001:db8:203::11" }))), null);
});

test("each backend's new connections are counted in its element of @svc_conns4; weights give the shares", () => {
  const k = kernelWith(table());
  const all = traceAll(k.ruleset, web());
  const shares = sharesBy(all, dnatOf);
  assert.ok(Math.abs((shares["198.51.100.12:8080"] ?? 0) - 2 / 3) < 1e-6, JSON.stringify(shares));
  assert.ok(Math.abs((shares["198.51.100.11:80"] ?? 0) - 1 / 3) < 1e-6, JSON.stringify(shares));
  for (const t of all) {
    const b = (dnatOf(t) ?? "").replace(":", " . ");
    assert.ok(
      t.counters.includes(`@svc_conns4 203.0.113.10 . tcp . 80 . ${b}`),
      `${dnatOf(t)}: ${t.counters.join(", ")}`,
    );
  }
});

test("source-hash: jhash of the source over the slots, so a source always gets the same backend", () => {
  const k = kernelWith(table());
  const slots = planOf().services[1]?.slots ?? [];
  const seed = planOf().services[1]?.hashSeed ?? 0;
  const seen = new Set<string>();
  for (let i = 1; i < 30; i++) {
    const src = `2001:db8:1::${i.toString(16)}`;
    const t = trace(k.ruleset, dns(src));
    const want = slots[nftJhash(toBytes(ipv6ToInt(src), 16), slots.length, seed)];
    assert.equal(dnatOf(t), want);
    assert.equal(dnatOf(trace(k.ruleset, dns(src, { sport: 50000 }))), want, "the port does not matter");
    seen.add(want ?? "");
  }
  assert.equal(seen.size, 2);
});

test("masquerade: snat services always, others only when the connection hairpins, only our own DNAT", () => {
  const k = kernelWith(table());
  const masq = (t: ReturnType<typeof trace>) => t.nat.some((n) => n.kind === "masquerade");
  assert.ok(masq(trace(k.ruleset, dns("2001:db8:1::7", { oif: "srv0" }))), "snat: true");
  assert.ok(!masq(traceAll(k.ruleset, web({ iif: "lan0", oif: "srv0" }))[0]!), "a LAN client: no SNAT");
  assert.ok(masq(traceAll(k.ruleset, web({ iif: "srv0", oif: "srv0" }))[0]!), "a client beside the backends");
  // Someone else's DNAT on the same interfaces is left alone.
  const other = tcp("198.51.100.30", "198.51.100.40", 80, { iif: "srv0", oif: "srv0", ctStatus: 0x20 });
  assert.ok(!masq(trace(k.ruleset, other)));
});

test("the packet path does not grow with backends: the same walk for 2 backends or 300", () => {
  const big = (n: number) =>
    parseConfig(`version: 1
services:
  big:
    listen: 203.0.113.10:80
    backends:
${Array.from({ length: n }, (_, i) => `      - { address: 198.51.${100 + (i >> 8)}.${i & 255}:80 }`).join("\n")}
`);
  const steps = (n: number) => {
    const c = big(n);
    const k = kernelWith(desiredState(c, allHealthy(c), { interfaces: new Map() }).nft);
    return trace(k.ruleset, web(), { numgen: 1, hooks: ["prerouting"] }).steps.length;
  };
  assert.equal(steps(300), steps(2));
});

test("nothing live: the service drops new connections (after the update, in place)", () => {
  const down = planOf({
    web: { "198.51.100.11:80": { up: false }, "198.51.100.12:8080": { up: true, weight: 0 } },
  });
  const k = kernelWith(table(), update(down, planOf()).join("\n") + "\n");
  const t = trace(k.ruleset, web());
  assert.equal(t.verdict, "drop");
  assert.equal(t.droppedIn, "svc_web");
});

test("update: only the service that changed is rewritten, and its rotation follows", () => {
  const before = planOf();
  const after = planOf({ web: { "198.51.100.11:80": { up: false } } });
  const lines = update(after, before);
  // web's chain and its elements in its group's map (keyed by its VIP . port), nothing else.
  assert.ok(
    lines.every((l) => l.includes("svc_web") || l.includes("203.0.113.10 . 80 . ")),
    lines.join("\n"),
  );
  assert.deepEqual(update(before, before), []);
  const k = kernelWith(table(), lines.join("\n") + "\n");
  assert.deepEqual(traceAll(k.ruleset, web()).map(dnatOf), ["198.51.100.12:8080"]);
});

test("desiredState: the full table loads, with reference checks", () => {
  const d = desiredState(cfg, allHealthy(cfg), facts);
  const k = kernelWith(d.nft);
  const nflb = k.ruleset.table("inet", "nflb");
  assert.deepEqual(
    [...(nflb?.chains.values() ?? [])]
      .filter((c) => c.base?.type === "nat")
      .map((c) => [c.name, c.base?.hook, c.base?.priority]),
    [
      ["prerouting_dnat", "prerouting", -100],
      ["output_dnat", "output", -100],
      ["postrouting_nat", "postrouting", 100],
    ],
  );
  assert.ok(dnatOf(traceAll(k.ruleset, web())[0]!));
  assert.equal(d.routing.rules.length, 0);
  assert.ok(d.sysctls.some((s) => s.key === "net/ipv6/conf/all/forwarding"));
});

test("update of a hash scheduler: only the sources of the failed backend move", () => {
  const before = planOf();
  const after = planOf({ dns: { "[2001:db8:51::11]:53": { up: false } } });
  const lines = update(after, before);
  assert.ok(!lines.some((l) => l.includes("svc_web")), lines.join("\n"));
  const old = kernelWith(table());
  const now = kernelWith(table(), lines.join("\n") + "\n");
  for (let i = 1; i < 40; i++) {
    const src = `2001:db8:1::${i.toString(16)}`;
    const was = dnatOf(trace(old.ruleset, dns(src)));
    const is = dnatOf(trace(now.ruleset, dns(src)));
    assert.equal(is, "[2001:db8:51::12]:53", src);
    if (was === "[2001:db8:51::12]:53") assert.equal(is, was);
  }
});

test("backend counters: one element per backend, keyed by the service and the backend's address", () => {
  assert.deepEqual(backendCounters(planOf()), [
    { service: "web", backend: "198.51.100.11:80", counter: "svc4 203.0.113.10 tcp 80 198.51.100.11 80" },
    { service: "web", backend: "198.51.100.12:8080", counter: "svc4 203.0.113.10 tcp 80 198.51.100.12 8080" },
    {
      service: "dns",
      backend: "[2001:db8:51::11]:53",
      counter: "svc6 2001:db8:203::10 udp 53 2001:db8:51::11 53",
    },
    {
      service: "dns",
      backend: "[2001:db8:51::12]:53",
      counter: "svc6 2001:db8:203::10 udp 53 2001:db8:51::12 53",
    },
  ]);
  const text = desiredState(cfg, allHealthy(cfg), facts).nft;
  assert.doesNotMatch(text, /^\s*counter svc_/m, "no named counter per backend");
  assert.doesNotMatch(text, /chain svc_web_b\d/, "no chain per backend");
});

test("with uplinks too: a LAN connection to a service VIP is DNATed, never balanced over the uplinks", () => {
  const c = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1 }
services:
  web: { listen: 198.51.100.10:80, backends: [{ address: 203.0.113.11:80 }] }
`);
  const k = kernelWith(desiredState(c, allHealthy(c), { interfaces: new Map() }).nft);
  const t = trace(k.ruleset, tcp("192.0.2.7", "198.51.100.10", 80), { hooks: ["prerouting"] });
  assert.equal(t.mark, 0, "not balanced");
  assert.equal(dnatOf(t), "203.0.113.11:80");
  const other = trace(k.ruleset, tcp("192.0.2.7", "198.51.100.10", 81), { hooks: ["prerouting"] });
  assert.equal(other.mark, 0x100, "another port of the same address is balanced");
  assert.ok(!k.ruleset.table("inet", "nflb")?.sets.has("svc_vips6"), "no IPv6 service, no IPv6 set");
});

test("bytes per backend: counted in each direction in the forward hook, keyed by the backend", () => {
  const c = parseConfig(`version: 1
services:
  web: { listen: 198.51.100.10:80, backends: [{ address: 203.0.113.11:80 }, { address: 203.0.113.12:8080 }] }
`);
  const k = kernelWith(desiredState(c, allHealthy(c), { interfaces: new Map() }).nft);
  const to = traceAll(k.ruleset, tcp("192.0.2.7", "198.51.100.10", 80));
  assert.deepEqual(
    to.map((t) => t.counters.filter((n) => n.startsWith("@svc_bytes_to4"))),
    [
      ["@svc_bytes_to4 198.51.100.10 . tcp . 80 . 203.0.113.11 . 80"],
      ["@svc_bytes_to4 198.51.100.10 . tcp . 80 . 203.0.113.12 . 8080"],
    ],
  );
  const reply = tcp("203.0.113.12", "192.0.2.7", 40000, {
    sport: 8080,
    ctState: "established",
    ctDirection: "reply",
    ctStatus: 0x20,
    ctOriginal: { saddr: "192.0.2.7", daddr: "198.51.100.10", sport: 40000, dport: 80 },
  });
  assert.deepEqual(trace(k.ruleset, reply).counters, [
    "@svc_bytes_from4 198.51.100.10 . tcp . 80 . 203.0.113.12 . 8080",
  ]);
});
