import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { allHealthy, buildModel, desiredState } from "../../src/plan/desired.ts";
import { planServices, type ServicesPlan } from "../../src/plan/services.ts";
import type { Facts, ServiceHealth } from "../../src/plan/types.ts";
import { backendCounters, buildServices } from "../../src/plan/nft-services.ts";
import { diff } from "../../src/nft/diff.ts";
import { objectsText } from "../../src/nft/serialize.ts";

const renderServices = (p: ServicesPlan) => {
  const s = buildServices(p);
  return { ...s, body: objectsText(s.section.objects) };
};
/** The transaction that turns `before` into `after` (only the services' objects in both). */
const update = (after: ServicesPlan, before: ServicesPlan): string[] =>
  diff(buildModel(null, before, undefined), buildModel(null, after, undefined))
    .script.split("\n")
    .filter(Boolean);

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

test("one dispatch lookup per family in the nat chains at dstnat (prerouting and output)", () => {
  const r = renderServices(planOf());
  assert.deepEqual(r.dnat.prerouting, [
    "meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @svc_dispatch4",
    "meta nfproto ipv6 ip6 daddr . meta l4proto . th dport vmap @svc_dispatch6",
  ]);
  assert.deepEqual(r.dnat.output, r.dnat.prerouting);
  const body = r.body;
  assert.match(body, /203\.0\.113\.10 \. tcp \. 80 : goto svc_web\b/);
  assert.match(body, /2001:db8:203::10 \. udp \. 53 : goto svc_dns\b/);
});

test("each backend: a chain with its named counter and the DNAT", () => {
  const body = renderServices(planOf()).body;
  assert.match(body, /counter svc_web_b0 \{/);
  assert.match(body, /meta l4proto tcp counter name svc_web_b1 dnat ip to 198\.51\.100\.12:8080/);
  assert.match(body, /meta l4proto udp counter name svc_dns_b0 dnat ip6 to \[2001:db8:51::11\]:53/);
});

test("decision rules: numgen for rotations, jhash of the source for hashing", () => {
  const body = renderServices(planOf()).body;
  assert.match(body, /numgen inc mod 3 vmap @svc_web_slots/);
  assert.match(body, /jhash ip6 saddr mod 1024 seed 0x[0-9a-f]{8} vmap @svc_dns_slots/);
});

test("postrouting: snat services and hairpin masquerade, only for our own services", () => {
  const r = renderServices(planOf());
  const key = (f: 4 | 6) =>
    `meta nfproto ipv${f} meta l4proto { tcp, udp } ct status dnat ct original ip${f === 6 ? "6" : ""} daddr . meta l4proto . ct original proto-dst`;
  assert.deepEqual(r.section.postroutingNat, [
    `${key(6)} @svc_snat6 masquerade`,
    `iifname . oifname @svc_hairpin ${key(4)} @svc_vips4 masquerade`,
    `iifname . oifname @svc_hairpin ${key(6)} @svc_vips6 masquerade`,
  ]);
  const body = r.body;
  assert.match(
    body,
    /set svc_snat6 \{\n\t\ttype ipv6_addr \. inet_proto \. inet_service\n\t\telements = \{ 2001:db8:203::10 \. udp \. 53 \}/,
  );
  assert.match(
    body,
    /set svc_vips4 \{\n\t\ttype ipv4_addr \. inet_proto \. inet_service\n\t\telements = \{ 203\.0\.113\.10 \. tcp \. 80 \}/,
  );
  assert.match(body, /"srv0" \. "srv0"/);
});

test("the packet path does not grow with backends: one rule per service chain", () => {
  const big = parseConfig(`version: 1
services:
  big:
    listen: 203.0.113.10:80
    backends:
${Array.from({ length: 300 }, (_, i) => `      - { address: 198.51.${100 + (i >> 8)}.${i & 255}:80 }`).join("\n")}
`);
  const p = planServices(big, {});
  assert.ok(p);
  const body = renderServices(p).body.split("\n");
  const svcChain = body.slice(body.indexOf("\tchain svc_big {"));
  assert.deepEqual(svcChain.slice(0, 3), [
    "\tchain svc_big {",
    "\t\tnumgen inc mod 300 vmap @svc_big_slots",
    "\t}",
  ]);
});

test("nothing live: the service drops new connections", () => {
  const p = planOf({
    web: { "198.51.100.11:80": { up: false }, "198.51.100.12:8080": { up: true, weight: 0 } },
  });
  assert.deepEqual(update(p, planOf()), [
    "flush chain inet nflb svc_web",
    "add rule inet nflb svc_web drop",
    "flush map inet nflb svc_web_slots",
  ]);
});

test("update: only services that changed, one map and one rule each", () => {
  const before = planOf();
  const after = planOf({ web: { "198.51.100.11:80": { up: false } } });
  assert.deepEqual(update(after, before), [
    "flush chain inet nflb svc_web",
    "add rule inet nflb svc_web numgen inc mod 1 vmap @svc_web_slots",
    // Slot 0 already goes to b1: only b0's slots (1, 2 of 3) go.
    "delete element inet nflb svc_web_slots { 1, 2 }",
  ]);
  assert.deepEqual(update(before, before), []);
});

test("desiredState carries services in the full table", () => {
  const d = desiredState(cfg, allHealthy(cfg), facts);
  assert.ok(d.services);
  assert.match(d.nft, /chain prerouting_dnat \{\n\t\ttype nat hook prerouting priority dstnat;/);
  assert.match(d.nft, /chain output_dnat \{\n\t\ttype nat hook output priority -100;/);
  assert.match(d.nft, /chain postrouting_nat \{/);
  assert.equal(d.routing.rules.length, 0);
  assert.ok(d.sysctls.some((s) => s.key === "net/ipv6/conf/all/forwarding"));
});

test("update of a hash scheduler: only the slots that changed", () => {
  const before = planOf();
  const after = planOf({ dns: { "[2001:db8:51::11]:53": { up: false } } });
  const lines = update(after, before);
  // The deletions, then the map declared again with the additions (see src/nft/diff.ts).
  assert.equal(lines.length, 7);
  assert.deepEqual(lines.slice(1, 4), [
    "table inet nflb {",
    "\tmap svc_dns_slots {",
    "\t\ttypeof numgen inc mod 1 : verdict",
  ]);
  const del = /^delete element inet nflb svc_dns_slots \{ (.*) \}$/.exec(lines[0] ?? "");
  const add = /^\t\telements = \{ (.*) \}$/.exec(lines[4] ?? "");
  assert.ok(del && add, lines.join("\n"));
  const keys = (del[1] ?? "").split(", ");
  // Only b0's buckets move, all of them to b1.
  const old = before.services[1]?.slots ?? [];
  assert.deepEqual(
    keys.map(Number),
    old.flatMap((b, i) => (b === "[2001:db8:51::11]:53" ? [i] : [])),
  );
  assert.ok((add[1] ?? "").split(", ").every((e) => e.endsWith(": goto svc_dns_b1")));
});

test("backend counters: one per backend, named after service and position", () => {
  assert.deepEqual(backendCounters(planOf()), [
    { service: "web", backend: "198.51.100.11:80", counter: "svc_web_b0" },
    { service: "web", backend: "198.51.100.12:8080", counter: "svc_web_b1" },
    { service: "dns", backend: "[2001:db8:51::11]:53", counter: "svc_dns_b0" },
    { service: "dns", backend: "[2001:db8:51::12]:53", counter: "svc_dns_b1" },
  ]);
});

test("with uplinks too: a LAN connection to a service VIP is DNATed, never balanced over the uplinks", () => {
  const c = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1 }
services:
  web: { listen: 198.51.100.10:80, backends: [{ address: 203.0.113.11:80 }] }
`);
  const d = desiredState(c, allHealthy(c), { interfaces: new Map() });
  const decide = /chain decide \{\n([^]*?)\n\t\}/.exec(d.nft)?.[1] ?? "";
  assert.match(decide, /ip daddr \. meta l4proto \. th dport @svc_vips4 return\n[^]*goto balance/);
  assert.doesNotMatch(decide, /svc_vips6/, "no IPv6 service, no IPv6 set");
});

test("bytes per backend: one counter-map lookup per direction, an element per backend, in the forward hook", () => {
  const c = parseConfig(`version: 1
services:
  web: { listen: 198.51.100.10:80, backends: [{ address: 203.0.113.11:80 }, { address: 203.0.113.12:8080 }] }
`);
  const nft = desiredState(c, allHealthy(c), { interfaces: new Map() }).nft;
  const chain = /chain svc_bytes \{\n([^]*?)\n\t\}/.exec(nft)?.[1] ?? "";
  assert.match(chain, /type filter hook forward priority filter;/);
  assert.equal(chain.split("\n").filter((l) => l.includes("counter name")).length, 2, chain);
  assert.match(nft, /198\.51\.100\.10 \. tcp \. 80 \. 203\.0\.113\.12 \. 8080 : "svc_web_b1_to"/);
  assert.match(nft, /198\.51\.100\.10 \. tcp \. 80 \. 203\.0\.113\.11 \. 80 : "svc_web_b0_from"/);
});
