import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { desiredState, allHealthy } from "../../src/plan/desired.ts";
import { planUplinks } from "../../src/plan/uplinks.ts";
import { renderRouting } from "../../src/render/routes.ts";
import { diffRouting, isEmptyDiff } from "../../src/apply/diff-routing.ts";
import { diff } from "../../src/nft/diff.ts";
import { interfaceFacts } from "../../testkit/dataplane-fakes.ts";
import { kernelWith, tcp, trace, traceAll, udp, type Packet } from "./tracer-support.ts";

const cfg = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: [100.64.1.1, "2001:db8:100:1::1"], weight: 5 }
  isp2: { interface: wan2, gateway: 100.64.2.1, weight: 3, nat: snat }
  isp3: { interface: wg0, weight: 2, nat: none }
balance: { method: round-robin, primary: [isp2, isp1] }
rules:
  - { name: bank, destination: [66.218.64.0/19, "2001:db8:66::/48"], via: [isp2, isp1] }
  - { name: smtp, protocol: tcp, port: 25, via: [isp3] }
  - { name: peers, destination: [203.0.113.0/24], via: main }
  - { name: web, source: [198.18.0.0/24], sticky: 30m }
`);

const facts = interfaceFacts({
  wan1: ["100.64.1.2", "2001:db8:100:1::2"],
  wan2: ["100.64.2.2"],
  wg0: ["100.64.3.2"],
});

test("marks, tables and the split follow the config order and weights", () => {
  const p = planUplinks(cfg, allHealthy(cfg).uplinks, facts)!;
  assert.deepEqual(
    p.uplinks.map((u) => [u.name, u.mark, u.table]),
    [
      ["isp1", 0x100, 201],
      ["isp2", 0x200, 202],
      ["isp3", 0x300, 203],
    ],
  );
  assert.equal(p.split4?.slots.length, 10);
  assert.equal(p.primary4, "isp2");
  assert.equal(p.primary6, "isp1");
  assert.deepEqual(p.rules[0]?.target, { kind: "uplink", uplink: "isp2" });
  assert.deepEqual(p.rules[2]?.target, { kind: "main" });
  assert.deepEqual(p.rules[3]?.target, { kind: "balance" });
});

test("health moves rules down their via list and shrinks the split", () => {
  const p = planUplinks(cfg, { isp1: { up: true }, isp2: { up: false }, isp3: { up: true } }, facts)!;
  assert.deepEqual(p.rules[0]?.target, { kind: "uplink", uplink: "isp1" });
  assert.equal(p.primary4, "isp1");
  assert.deepEqual([...new Set(p.split4?.slots)].sort(), ["isp1", "isp3"]);
  assert.equal(p.split4?.slots.length, 7);
  const none = planUplinks(cfg, { isp1: { up: false }, isp2: { up: false }, isp3: { up: false } }, facts)!;
  assert.equal(none.split4, null);
  const smtpDown = planUplinks(cfg, { isp1: { up: true }, isp2: { up: true }, isp3: { up: false } }, facts)!;
  assert.deepEqual(
    smtpDown.rules[1]?.target,
    { kind: "balance" },
    "a rule whose via list is all dead falls back to balancing",
  );
});

test("the nft ruleset: rules by destination and port, marks only inside the mask, NAT per uplink", () => {
  const d = desiredState(cfg, allHealthy(cfg), facts);
  const k = kernelWith(d.nft);
  const pre = { hooks: ["prerouting"] as const, numgen: 0 };
  const mark = (pkt: Packet) => trace(k.ruleset, pkt, { ...pre, hooks: [...pre.hooks] }).mark;
  assert.equal(mark(tcp("192.0.2.7", "66.218.70.1", 443)), 0x200, "bank via isp2");
  // isp2 has no IPv6 gateway: IPv6 takes the next of `via` that carries it.
  assert.equal(mark(tcp("2001:db8:1::7", "2001:db8:66::1", 443)), 0x100, "bank, IPv6 via isp1");
  assert.equal(mark(tcp("192.0.2.7", "93.184.216.34", 25)), 0x300, "smtp via isp3");
  assert.equal(mark(udp("192.0.2.7", "93.184.216.34", 25)), 0x100, "udp/25 is balanced (slot 0: isp1)");
  assert.equal(mark(tcp("192.0.2.7", "203.0.113.9", 22)), 0xff00, "peers via main");
  assert.equal(
    mark(tcp("192.0.2.7", "66.218.70.1", 443, { mark: 0x12340001 })),
    0x12340201,
    "bits outside the mask kept",
  );
  // A packet of a pinned connection gets its uplink back from the conntrack mark.
  assert.equal(mark(tcp("192.0.2.7", "93.184.216.34", 80, { ctState: "established", ctMark: 0x300 })), 0x300);
  // Leaving by isp2: SNAT to its address; by isp1: masquerade; wg0 (nat: none): nothing.
  const nat = (oif: string) =>
    trace(k.ruleset, tcp("192.0.2.7", "93.184.216.34", 80, { oif }), { numgen: 0 }).nat.map((n) =>
      n.kind === "snat" ? `snat ${n.addr}` : n.kind,
    );
  assert.deepEqual(nat("wan2"), ["snat 100.64.2.2"]);
  assert.deepEqual(nat("wan1"), ["masquerade"]);
  assert.deepEqual(nat("wg0"), []);
  // The round-robin split: one lookup in a 10-slot map, the rotation in the plan's order.
  const rotation = traceAll(k.ruleset, tcp("192.0.2.7", "93.184.216.34", 80), { hooks: ["prerouting"] });
  const p = planUplinks(cfg, allHealthy(cfg).uplinks, facts);
  assert.deepEqual(
    rotation.map((t) => p?.uplinks.find((u) => u.mark === t.mark)?.name),
    p?.split4?.slots,
  );
  // A health change (isp1 down) as the daemon writes it loads on top (its references all resolve).
  const h = allHealthy(cfg);
  h.uplinks.isp1 = { up: false };
  k.apply(diff(d.model, desiredState(cfg, h, facts).model).script);
});

test("routing: suppress main default, fwmark + from rules per uplink, primary default table", () => {
  const d = desiredState(cfg, allHealthy(cfg), facts);
  const text = renderRouting(d.routing);
  assert.match(text, /ip -4 rule add priority 10000 lookup main suppress_prefixlength 0 protocol 110/);
  assert.match(text, /ip -4 rule add priority 10010 fwmark 0x100\/0xff00 lookup 201 protocol 110/);
  assert.match(text, /ip -4 rule add priority 10500 from 100\.64\.1\.2 lookup 201/);
  // and nothing bound to that address falls through to another uplink when its table is empty
  assert.match(text, /ip -4 rule add priority 10700 from 100\.64\.1\.2 unreachable/);
  assert.match(text, /ip -4 route replace default table 203 proto 110 dev wg0/);
  assert.match(text, /ip -4 route replace default table 200 proto 110 via 100\.64\.2\.1 dev wan2/);
  assert.match(text, /ip -6 route replace default table 201 proto 110 via 2001:db8:100:1::1 dev wan1/);
  assert.doesNotMatch(text, /ip -6 .* table 202/, "isp2 has no IPv6");
});

test("re-planning the same state yields an empty routing diff", () => {
  const d = desiredState(cfg, allHealthy(cfg), facts);
  assert.ok(isEmptyDiff(diffRouting(d.routing, { rules: d.routing.rules, routes: d.routing.routes })));
  const diff = diffRouting(d.routing, { rules: [], routes: [] });
  assert.equal(diff.addRules.length, d.routing.rules.length);
});

test("local: balance installs a weighted multipath default", () => {
  const c = parseConfig(`version: 1
uplinks:
  a: { interface: wan1, gateway: 100.64.1.1, weight: 3 }
  b: { interface: wan2, gateway: 100.64.2.1, weight: 1 }
balance: { local: balance }
`);
  const text = renderRouting(desiredState(c, allHealthy(c), facts).routing);
  assert.match(
    text,
    /default table 200 proto 110 nexthop via 100\.64\.1\.1 dev wan1 weight 3 nexthop via 100\.64\.2\.1 dev wan2 weight 1/,
  );
});

test("each uplink: loose rp_filter, and its reverse-path check looks the source up with the packet's mark", () => {
  const d = desiredState(cfg, allHealthy(cfg), facts);
  for (const iface of ["wan1", "wan2", "wg0"]) {
    assert.ok(d.sysctls.some((s) => s.key === `net/ipv4/conf/${iface}/rp_filter` && s.value === "2"));
    assert.ok(d.sysctls.some((s) => s.key === `net/ipv4/conf/${iface}/src_valid_mark` && s.value === "1"));
  }
});

const minimal = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: [100.64.1.1, "2001:db8:100:1::1"], weight: 5 }
  isp2: { interface: wan2, gateway: 100.64.2.1, weight: 3, nat: snat }
  isp3: { interface: wg0, weight: 2, nat: none }
balance: { method: round-robin, primary: [isp2, isp1], conntrack_events: minimal }
rules:
  - { name: peers, destination: [203.0.113.0/24], via: main }
`);

test("conntrack_events: minimal: a balanced connection reports only new, destroy and reply to conntrack's listeners", () => {
  const k = kernelWith(desiredState(minimal, allHealthy(minimal), facts).nft);
  const pre = (pkt: Packet) => trace(k.ruleset, pkt, { hooks: ["prerouting"], numgen: 0 });
  const lan = pre(tcp("192.0.2.7", "93.184.216.34", 443));
  assert.equal(lan.mark, 0x100);
  assert.deepEqual(lan.ctEvents, ["new", "destroy", "reply"]);
  assert.deepEqual(
    pre(tcp("192.0.2.7", "203.0.113.9", 22)).ctEvents,
    ["new", "destroy", "reply"],
    "via main",
  );
  // Not ours to thin: connections that arrive on an uplink (a service's DNATed flows among them).
  assert.equal(pre(tcp("203.0.113.9", "100.64.1.2", 443, { iif: "wan1" })).ctEvents, undefined);
  assert.equal(
    pre(tcp("192.0.2.7", "93.184.216.34", 80, { ctState: "established", ctMark: 0x300 })).ctEvents,
    undefined,
    "a pinned connection's packets",
  );
});

test("conntrack_events: all (the default), passive off or one uplink: connections report every event", () => {
  const yaml = (uplinks: string, events = "minimal") =>
    parseConfig(`version: 1\nuplinks:\n${uplinks}balance: { conntrack_events: ${events} }\n`);
  const two =
    "  isp1: { interface: wan1, gateway: 100.64.1.1 }\n  isp2: { interface: wan2, gateway: 100.64.2.1 }\n";
  const off = yaml(
    "  isp1: { interface: wan1, gateway: 100.64.1.1, passive: false }\n  isp2: { interface: wan2, gateway: 100.64.2.1, passive: false }\n",
  );
  const one = yaml("  isp1: { interface: wan1, gateway: 100.64.1.1 }\n");
  const onlyOne = yaml(
    "  isp1: { interface: wan1, gateway: 100.64.1.1, passive: false }\n  isp2: { interface: wan2, gateway: 100.64.2.1 }\n",
  );
  for (const [c, on, what] of [
    [cfg, false, "default"],
    [yaml(two, "all"), false, "all"],
    [yaml(two), true, "minimal"],
    [off, false, "passive off"],
    [one, false, "one uplink"],
    [onlyOne, true, "one uplink with passive"],
  ] as const) {
    assert.equal(planUplinks(c, allHealthy(c).uplinks, facts)?.passiveEvents === true, on, what);
    assert.equal(desiredState(c, allHealthy(c), facts).nft.includes("ct event set"), on, what);
  }
});

test("balance.from: accept_local=1 there, and nflb drops what arrives there from the router's own addresses", () => {
  const yaml = (extra: string) =>
    parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1 }
  isp2: { interface: wan2, gateway: 100.64.2.1 }
balance: { from: [lan0, lan1]${extra} }
`);
  const c = yaml(", accept_local: true");
  const d = desiredState(c, allHealthy(c), facts);
  for (const iface of ["lan0", "lan1"])
    assert.ok(d.sysctls.some((s) => s.key === `net/ipv4/conf/${iface}/accept_local` && s.value === "1"));
  assert.ok(!d.sysctls.some((s) => /wan\d\/accept_local/.test(s.key)), "uplinks keep the kernel's check");

  const k = kernelWith(d.nft);
  const local = ["100.64.1.2", "100.64.2.2", "192.0.2.1"];
  const fwd = (pkt: Packet) => trace(k.ruleset, { localAddresses: local, ...pkt }, { numgen: 0 });
  assert.equal(fwd(tcp("192.0.2.7", "93.184.216.34", 443)).verdict, "accept", "a LAN client");
  for (const spoofed of ["100.64.1.2", "192.0.2.1"]) {
    const t = fwd(tcp(spoofed, "93.184.216.34", 443));
    assert.equal(t.verdict, "drop", `${spoofed} from the LAN, a new connection`);
    assert.equal(t.droppedIn, "prerouting");
    // Nor as a packet of a connection nflb has not pinned (the router's own over lo, untracked).
    const est = fwd(tcp(spoofed, "192.0.2.1", 53, { ctState: "established", ctMark: 0, path: "input" }));
    assert.equal(est.verdict, "drop", `${spoofed} from the LAN to the router, established`);
  }
  // A pinned connection's packets leave at the mark restore, before the check (what that lets
  // through can only leave by the connection's uplink toward its peer: docs/DATAPLANE.md).
  const pinned = fwd(tcp("100.64.1.2", "93.184.216.34", 443, { ctState: "established", ctMark: 0x100 }));
  assert.equal(pinned.verdict, "accept");
  // Only the interfaces nflb set accept_local on: lo and the uplinks keep the kernel's own check.
  assert.equal(fwd(tcp("192.0.2.1", "192.0.2.1", 22, { iif: "lo", path: "input" })).verdict, "accept");
  assert.equal(fwd(tcp("100.64.1.2", "192.0.2.7", 443, { iif: "wan1", oif: "lan0" })).verdict, "accept");
  // IPv6 has no accept_local: no lookup for it.
  assert.equal(fwd(tcp("2001:db8:1::7", "2001:db8:66::1", 443)).verdict, "accept");

  // Not opted in (the default), opted out, or no balance.from (the LAN interfaces unknown): neither the sysctl nor the rule.
  for (const other of [yaml(""), yaml(", accept_local: false"), cfg]) {
    const o = desiredState(other, allHealthy(other), facts);
    assert.ok(!o.sysctls.some((s) => s.key.endsWith("/accept_local")));
    assert.doesNotMatch(o.nft, /fib saddr/);
  }
});
