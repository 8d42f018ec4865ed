// Policy routing without root: config → plan → diff against what the kernel holds → the exact
// `ip -batch` text, checked against a fake `ip` that fails on a duplicate add like the kernel
// (in the style of tailscale's router_linux_test.go).
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";
import type { Health } from "../../src/plan/types.ts";
import { ROUTE_PROTO, type RoutingPlan } from "../../src/plan/routing.ts";
import { batchText } from "../../src/render/routes.ts";
import { diffOps, diffRouting, isEmptyDiff, ownedRouting, ruleKey } from "../../src/apply/diff-routing.ts";
import { applyRoutingOps, readOwned } from "../../src/apply/routing-batch.ts";
import { downLines } from "../../src/apply/down.ts";
import { parseRoutes, parseRules } from "../../src/system/iproute.ts";
import { interfaceFacts } from "../../testkit/dataplane-fakes.ts";
import { FakeIp } from "./fake-ip.ts";

const facts = interfaceFacts({
  wan1: ["100.64.1.2", "2001:db8:100:1::2"],
  wan2: ["100.64.2.2"],
  wan3: ["100.64.3.2"],
});

const TWO = `version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1 }
  isp2: { interface: wan2, gateway: 100.64.2.1 }
`;
const DUAL_BALANCE = `version: 1
uplinks:
  isp1: { interface: wan1, gateway: [100.64.1.1, "2001:db8:100:1::1"], weight: 3 }
  isp2: { interface: wan2, gateway: 100.64.2.1 }
balance: { local: balance }
table_base: 300
rule_priority_base: 20000
`;

const plan = (yaml: string, health?: Health): RoutingPlan => {
  const c = parseConfig(yaml);
  return desiredState(c, { ...allHealthy(c), ...(health ? { uplinks: health } : {}) }, facts).routing;
};

const fromScratch = (p: RoutingPlan) => {
  const none = { rules: [], routes: [] };
  return diffOps(diffRouting(p, none), none);
};

const cases: { name: string; yaml: string; v4: string; v6: string }[] = [
  {
    name: "two IPv4 uplinks, primary default route",
    yaml: TWO,
    v4: `rule add priority 10000 lookup main suppress_prefixlength 0 protocol 110
rule add priority 10001 fwmark 0xff00/0xff00 lookup main protocol 110
rule add priority 10010 fwmark 0x100/0xff00 lookup 201 protocol 110
rule add priority 10011 fwmark 0x200/0xff00 lookup 202 protocol 110
rule add priority 10500 from 100.64.1.2 lookup 201 protocol 110
rule add priority 10700 from 100.64.1.2 unreachable protocol 110
rule add priority 10501 from 100.64.2.2 lookup 202 protocol 110
rule add priority 10701 from 100.64.2.2 unreachable protocol 110
rule add priority 10900 lookup 200 protocol 110
route replace default table 201 proto 110 via 100.64.1.1 dev wan1
route replace default table 202 proto 110 via 100.64.2.1 dev wan2
route replace default table 200 proto 110 via 100.64.1.1 dev wan1
`,
    v6: "",
  },
  {
    name: "dual stack, local: balance, other bases (table and proto before the nexthops)",
    yaml: DUAL_BALANCE,
    v4: `rule add priority 20000 lookup main suppress_prefixlength 0 protocol 110
rule add priority 20001 fwmark 0xff00/0xff00 lookup main protocol 110
rule add priority 20010 fwmark 0x100/0xff00 lookup 301 protocol 110
rule add priority 20011 fwmark 0x200/0xff00 lookup 302 protocol 110
rule add priority 20500 from 100.64.1.2 lookup 301 protocol 110
rule add priority 20700 from 100.64.1.2 unreachable protocol 110
rule add priority 20501 from 100.64.2.2 lookup 302 protocol 110
rule add priority 20701 from 100.64.2.2 unreachable protocol 110
rule add priority 20900 lookup 300 protocol 110
route replace default table 301 proto 110 via 100.64.1.1 dev wan1
route replace default table 302 proto 110 via 100.64.2.1 dev wan2
route replace default table 300 proto 110 nexthop via 100.64.1.1 dev wan1 weight 3 nexthop via 100.64.2.1 dev wan2 weight 1
`,
    v6: `rule add priority 20000 lookup main suppress_prefixlength 0 protocol 110
rule add priority 20001 fwmark 0xff00/0xff00 lookup main protocol 110
rule add priority 20010 fwmark 0x100/0xff00 lookup 301 protocol 110
rule add priority 20500 from 2001:db8:100:1::2 lookup 301 protocol 110
rule add priority 20700 from 2001:db8:100:1::2 unreachable protocol 110
rule add priority 20900 lookup 300 protocol 110
route replace default table 301 proto 110 via 2001:db8:100:1::1 dev wan1
route replace default table 300 proto 110 via 2001:db8:100:1::1 dev wan1
`,
  },
];

for (const c of cases) {
  test(`from scratch: ${c.name}`, async () => {
    const p = plan(c.yaml);
    const ops = fromScratch(p);
    assert.equal(batchText(ops, 4), c.v4);
    assert.equal(batchText(ops, 6), c.v6);
    // The fake kernel takes it, and a second pass has nothing to do (no duplicate add).
    const ip = new FakeIp();
    await applyRoutingOps(ip, ops, p, { rules: [], routes: [] });
    const now = await readOwned(ip, p);
    assert.ok(isEmptyDiff(diffRouting(p, now)));
    assert.equal(ip.batches.length, c.v6 ? 2 : 1, "one batch per family");
  });
}

test("a health change is one route replace, nothing else", async () => {
  const ip = new FakeIp();
  const all = plan(TWO);
  await applyRoutingOps(ip, fromScratch(all), all, { rules: [], routes: [] });
  const down1 = plan(TWO, { isp1: { up: false }, isp2: { up: true } });
  const have = await readOwned(ip, down1);
  const ops = diffOps(diffRouting(down1, have), have);
  assert.equal(batchText(ops, 4), "route replace default table 200 proto 110 via 100.64.2.1 dev wan2\n");
  assert.equal(batchText(ops, 6), "");
});

test("the fake fails on a duplicate add, as the kernel does", async () => {
  const ip = new FakeIp();
  const line = `rule add priority 10010 fwmark 0x100/0xff00 lookup 201 protocol ${ROUTE_PROTO}\n`;
  await ip.batch(4, line);
  await assert.rejects(ip.batch(4, line), /File exists/);
  // The same rule with another protocol is another rule (checked with ip 6.1 on kernel 6.18).
  await ip.batch(4, line.replace(/protocol \d+/, "protocol 4"));
});

test("random transitions converge; the batch never adds what is there", async () => {
  const ip = new FakeIp();
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 1;
  const yamls = [
    TWO,
    DUAL_BALANCE,
    TWO.replace("isp2:", "isp3: { interface: wan3, gateway: 100.64.3.1 }\n  isp2:"),
  ];
  const wide = { priorities: { from: 10_000, to: 20_999 }, tables: { from: 200, to: 310 } };
  for (let i = 0; i < 60; i++) {
    const y = yamls[Math.floor(rnd() * yamls.length)] as string;
    const h: Health = { isp1: { up: rnd() > 0.3 }, isp2: { up: rnd() > 0.3 }, isp3: { up: rnd() > 0.5 } };
    const want = plan(y, h);
    const have = await readOwned(ip, wide);
    await applyRoutingOps(ip, diffOps(diffRouting(want, have), have), wide, have);
    const after = await readOwned(ip, wide);
    assert.deepEqual(after.rules.map(ruleKey).sort(), want.rules.map(ruleKey).sort(), `step ${i}`);
    assert.ok(isEmptyDiff(diffRouting(want, after)), `step ${i} converged`);
  }
});

test("a line failing midway: the lines before it are undone, in both families", async () => {
  const ip = new FakeIp();
  const p = plan(DUAL_BALANCE);
  // The v4 batch goes in whole, then the v6 batch fails at its default route (gateway refused).
  ip.failOn = /route replace default table 300 proto 110 via 2001:db8/;
  const ops = fromScratch(p);
  await assert.rejects(applyRoutingOps(ip, ops, p, { rules: [], routes: [] }), (e: Error) => {
    assert.match(e.message, /ip -6 -batch line 8 "route replace default table 300 .*2001:db8:100:1::1/);
    return true;
  });
  assert.deepEqual(ip.rules, []);
  assert.deepEqual(ip.routes, []);
  // The undo ran as one forced batch per family, v6 first (last applied, first undone).
  assert.deepEqual(
    ip.batches.slice(2).map((b) => [b.fam, b.force]),
    [
      [6, true],
      [4, true],
    ],
  );
});

test("an undo puts back the route a replace overwrote", async () => {
  const ip = new FakeIp();
  const all = plan(TWO);
  await applyRoutingOps(ip, fromScratch(all), all, { rules: [], routes: [] });
  const before = await readOwned(ip, all);
  const moved = plan(TWO, { isp1: { up: false }, isp2: { up: true } });
  const undo = await applyRoutingOps(ip, diffOps(diffRouting(moved, before), before), all, before);
  await undo();
  assert.ok(isEmptyDiff(diffRouting(all, await readOwned(ip, all))));
});

test("other tools' rules and routes in nflb's ranges are not nflb's (strongSwan: table 220)", async () => {
  const ip = new FakeIp();
  const p = plan(TWO);
  ip.addForeignRule({ family: 4, priority: 10_500, table: 220 });
  ip.addForeignRule({ family: 4, priority: 220, table: 220 });
  ip.addForeignRoute(4, 220, "198.51.100.0/24");
  ip.addForeignRoute(4, 201, "203.0.113.0/24");
  await applyRoutingOps(ip, fromScratch(p), p, { rules: [], routes: [] });
  const range = { priorities: { from: 10_000, to: 10_999 }, tables: { from: 200, to: 300 } };
  const k = { rules: ip.rules, routes: ip.routes };
  assert.equal(ownedRouting(k, range).rules.length, p.rules.length);
  const lines = downLines(k, range, 4);
  assert.equal(lines.length, p.rules.length + p.routes.length);
  assert.ok(lines.every((l) => l.endsWith(`${ROUTE_PROTO}`)));
  await ip.batch(4, lines.join("\n") + "\n", { force: true });
  assert.deepEqual(
    ip.rules.map((r) => [r.priority, r.table]),
    [
      [10_500, 220],
      [220, 220],
    ],
  );
  assert.deepEqual(
    ip.routes.map((r) => [r.table, r.dst]),
    [
      [220, "198.51.100.0/24"],
      [201, "203.0.113.0/24"],
    ],
  );
});

test("parsing `ip -N -j` output (captured from iproute2 6.1)", () => {
  const rules = parseRules(
    4,
    `[{"priority":0,"src":"all","table":"255"},{"priority":10011,"src":"all","fwmark":"0x200","fwmask":"0xff00","table":"202","protocol":"110"},{"priority":10012,"src":"192.0.2.1","action":"7","protocol":"110"},{"priority":10013,"src":"all","table":"254","suppress_prefixlen":0,"protocol":"110"},{"priority":10500,"src":"all","table":"220"}]`,
  );
  assert.deepEqual(rules.slice(1), [
    { family: 4, priority: 10011, table: 202, proto: 110, fwmark: { value: 0x200, mask: 0xff00 } },
    { family: 4, priority: 10012, table: "unreachable", proto: 110, from: "192.0.2.1" },
    { family: 4, priority: 10013, table: "main", proto: 110, suppressPrefixlength: 0 },
    { family: 4, priority: 10500, table: 220, proto: 0 },
  ]);
  const routes = parseRoutes(
    6,
    `[{"dst":"default","table":"200","protocol":"110","metric":1024,"flags":[],"pref":"medium","nexthops":[{"gateway":"2001:db8::2","dev":"v0","weight":2,"flags":[]},{"gateway":"2001:db8::3","dev":"v0","weight":1,"flags":[]}]},{"dst":"2001:db8::/64","dev":"v0","protocol":"2","metric":256,"flags":[]},{"type":"local","dst":"2001:db8::1","dev":"v0","table":"255","protocol":"2","metric":0,"flags":[]}]`,
  );
  assert.deepEqual(routes[0]?.spec, {
    family: 6,
    table: 200,
    nexthops: [
      { via: "2001:db8::2", dev: "v0", weight: 2 },
      { via: "2001:db8::3", dev: "v0", weight: 1 },
    ],
  });
  assert.deepEqual(
    routes.map((r) => [r.table, r.type, r.proto]),
    [
      [200, "unicast", 110],
      [254, "unicast", 2],
      [255, "local", 2],
    ],
  );
});

test("a word that could start another batch line is refused, not sent", () => {
  const route = { family: 4 as const, table: 201, nexthops: [{ dev: "wan1\nrule flush" }] };
  assert.throws(() => batchText([{ op: "route-replace", route }], 4), /refusing ip batch word/);
});
