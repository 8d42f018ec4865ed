import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { desiredState, allHealthy } from "../../src/plan/desired.ts";
import { planUplinks } from "../../src/plan/uplinks.ts";
import { renderRouting } from "../../src/render/routes.ts";
import { diffRouting, isEmptyDiff } from "../../src/apply/diff-routing.ts";
import { diff } from "../../src/nft/diff.ts";
import type { Facts } from "../../src/plan/types.ts";

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

const facts: Facts = {
  interfaces: new Map([
    [
      "wan1",
      {
        name: "wan1",
        up: true,
        addresses: [
          { family: 4, text: "100.64.1.2" },
          { family: 6, text: "2001:db8:100:1::2" },
        ],
      },
    ],
    ["wan2", { name: "wan2", up: true, addresses: [{ family: 4, text: "100.64.2.2" }] }],
    ["wg0", { name: "wg0", up: true, addresses: [{ family: 4, text: "100.64.3.2" }] }],
  ]),
};

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
  assert.equal(p.split?.slots.length, 10);
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
  assert.deepEqual([...new Set(p.split?.slots)].sort(), ["isp1", "isp3"]);
  assert.equal(p.split?.slots.length, 7);
  const none = planUplinks(cfg, { isp1: { up: false }, isp2: { up: false }, isp3: { up: false } }, facts)!;
  assert.equal(none.split, null);
  const smtpDown = planUplinks(cfg, { isp1: { up: true }, isp2: { up: true }, isp3: { up: false } }, facts)!;
  assert.deepEqual(
    smtpDown.rules[1]?.target,
    { kind: "balance" },
    "a rule whose via list is all dead falls back to balancing",
  );
});

test("the nft script is O(1) per packet: a vmap for the split, one rule per match", () => {
  const d = desiredState(cfg, allHealthy(cfg), facts);
  assert.match(d.nft, /^add table inet nflb\ndelete table inet nflb\ntable inet nflb \{/);
  assert.match(d.nft, /numgen inc mod 10 vmap @split/);
  assert.match(d.nft, /ct mark and 0x0000ff00 vmap @restore_mark/);
  assert.match(d.nft, /type filter hook prerouting priority mangle/);
  assert.match(d.nft, /type route hook output priority mangle/);
  assert.match(d.nft, /type nat hook postrouting priority srcnat/);
  assert.match(d.nft, /ip daddr @rule_0_dst4 goto rule_0/);
  assert.match(d.nft, /ip6 daddr @rule_0_dst6 goto rule_0/);
  assert.match(d.nft, /tcp dport 25 goto rule_1/);
  assert.match(d.nft, /meta nfproto ipv4 snat ip to 100\.64\.2\.2/);
  assert.match(d.nft, /set meta mark and 0xffff00ff or 0x00000100/, "marks touch only the mask's bits");
  // the split map has one element per slot, not a rule per uplink
  const splitRules = d.nft.split("\n").filter((l) => l.includes("vmap @split"));
  assert.equal(splitRules.length, 1);
  // A health change is an in-place update of the split and the balance rule.
  const down = desiredState(
    cfg,
    { ...allHealthy(cfg), uplinks: { ...allHealthy(cfg).uplinks, isp1: { up: false } } },
    facts,
  );
  const update = diff(d.model, down.model).script;
  assert.doesNotMatch(update, /^(add|delete) table|^\tchain /m, "no table replaced, no chain added");
  assert.match(update, /^\tmap split \{$/m);
});

test("routing: suppress main default, fwmark + from rules per uplink, primary default table", () => {
  const d = desiredState(cfg, allHealthy(cfg), facts);
  const text = renderRouting(d.routing);
  assert.match(text, /ip -4 rule add priority 10000 lookup main suppress_prefixlength 0/);
  assert.match(text, /ip -4 rule add priority 10010 fwmark 0x100\/0xff00 lookup 201/);
  assert.match(text, /ip -4 rule add priority 10500 from 100\.64\.1\.2 lookup 201/);
  // and nothing bound to that address falls through to another uplink when its table is empty
  assert.match(text, /ip -4 rule add priority 10700 from 100\.64\.1\.2 unreachable/);
  assert.match(text, /ip -4 route replace default dev wg0 table 203/);
  assert.match(text, /ip -4 route replace default via 100\.64\.2\.1 dev wan2 table 200/);
  assert.match(text, /ip -6 route replace default via 2001:db8:100:1::1 dev wan1 table 201/);
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
    /default nexthop via 100\.64\.1\.1 dev wan1 weight 3 nexthop via 100\.64\.2\.1 dev wan2 weight 1 table 200/,
  );
});
