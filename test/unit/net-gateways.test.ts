// Gateways learned from the system's routes (DHCP, RA): parsed, bounded, validated, and how the
// plan and the health check use them.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  autoGatewayProblem,
  defaultHops,
  pickGateway,
  resolveGateways,
  type DeviceView,
} from "../../src/net/gateways.ts";
import { parseLinks } from "../../src/health/link-watch.ts";
import { networkOf, parseAddr, type Addr } from "../../src/net/ip.ts";
import { parseConfig } from "../../src/config/load.ts";
import { allUp, planUplinks } from "../../src/plan/uplinks.ts";
import { planRouting } from "../../src/plan/routing.ts";
import { familyProblem } from "../../src/plan/families.ts";
import type { Facts, InterfaceFacts } from "../../src/plan/types.ts";

const a = (s: string) => parseAddr(s) as Addr;
const net = (s: string, len: number) => networkOf(a(s), len);

test("defaultHops: default routes of every table by device, never nflb's own (proto 110)", () => {
  const json = JSON.stringify([
    { dst: "default", gateway: "192.0.2.9", dev: "wan0", table: "201", protocol: "110" },
    { dst: "default", gateway: "192.0.2.1", dev: "wan0", protocol: "16", metric: 1002 },
    { dst: "default", dev: "tun0", protocol: "3" },
    { dst: "default", type: "unreachable", table: "300" },
    {
      dst: "default",
      nexthops: [
        { gateway: "198.51.100.1", dev: "wan1" },
        { gateway: "x", dev: "wan2" },
      ],
    },
    { dst: "192.0.2.0/24", dev: "wan0" },
    null,
  ]);
  const m = defaultHops(json);
  assert.deepEqual(
    [...m],
    [
      ["wan0", ["192.0.2.1"]],
      ["wan1", ["198.51.100.1"]],
      ["wan2", ["x"]],
    ],
  );
  assert.equal(defaultHops("not json").size, 0);
  assert.equal(defaultHops('{"dst":"default"}').size, 0);
  assert.equal(defaultHops("").size, 0);
  const many = Array.from({ length: 50 }, (_, i) => ({
    dst: "default",
    gateway: `192.0.2.${i + 1}`,
    dev: "wan0",
  }));
  assert.equal(defaultHops(JSON.stringify(many)).get("wan0")?.length, 8);
});

test("pickGateway: on-link only; a gateway outside the subnets is refused with a reason", () => {
  const subnets = [net("192.0.2.10", 24), net("2001:db8:1::10", 64)];
  assert.deepEqual(pickGateway("wan0", 4, ["192.0.2.1"], subnets), { gw: "192.0.2.1" });
  assert.deepEqual(pickGateway("wan0", 6, ["fe80::1"], subnets), { gw: "fe80::1" });
  assert.deepEqual(pickGateway("wan0", 6, ["2001:db8:1::1"], subnets), { gw: "2001:db8:1::1" });
  assert.deepEqual(pickGateway("wan0", 4, [], subnets), {});
  const out = pickGateway("wan0", 4, ["203.0.113.1"], subnets);
  assert.equal(out.gw, undefined);
  assert.match(
    out.refused ?? "",
    /IPv4 gateway 203\.0\.113\.1 on wan0 is outside its subnets \(192\.0\.2\.0\/24\): refused/,
  );
  // A refused one does not hide a good one after it.
  assert.deepEqual(pickGateway("wan0", 4, ["203.0.113.1", "192.0.2.1"], subnets), { gw: "192.0.2.1" });
  assert.match(pickGateway("wan0", 4, ["1.2.3.4; reboot"], subnets).refused ?? "", /is not an IPv4 address/);
  assert.match(pickGateway("wan0", 4, ["192.0.2.1"], []).refused ?? "", /outside its subnets \(none\)/);
});

const dev = (o: Partial<DeviceView> = {}): DeviceView => ({
  iface: "wan0",
  addresses: [a("192.0.2.10")],
  ...o,
});

test("resolveGateways: static, auto, omitted", () => {
  const learned = dev({ gw4: { gw: "192.0.2.1" } });
  assert.deepEqual(resolveGateways(["100.64.1.1", "2001:db8::1"], learned), {
    auto: false,
    gw4: "100.64.1.1",
    gw6: "2001:db8::1",
    reason4: null,
    reason6: null,
  });
  assert.equal(resolveGateways(undefined, learned).gw4, "192.0.2.1");
  assert.deepEqual(resolveGateways(undefined, dev()), { auto: false, reason4: null, reason6: null });
  const auto = resolveGateways("auto", dev());
  assert.equal(auto.gw4, undefined);
  assert.equal(auto.reason4, "no IPv4 gateway learned on wan0");
  assert.equal(auto.reason6, "no IPv6 address on wan0");
  const refused = resolveGateways(
    "auto",
    dev({ gw4: { refused: "IPv4 gateway 203.0.113.1 on wan0 is outside" } }),
  );
  assert.match(refused.reason4 ?? "", /203\.0\.113\.1/);
});

test("autoGatewayProblem: only for auto; the reason of the family the device has an address of", () => {
  assert.equal(autoGatewayProblem(undefined, dev()), null);
  assert.equal(autoGatewayProblem(["192.0.2.1"], dev()), null);
  assert.equal(autoGatewayProblem("auto", dev()), "no IPv4 gateway learned on wan0");
  assert.equal(autoGatewayProblem("auto", dev({ gw4: { gw: "192.0.2.1" } })), null);
  assert.equal(
    autoGatewayProblem("auto", dev({ addresses: [a("2001:db8::5")] })),
    "no IPv6 gateway learned on wan0",
  );
  assert.equal(
    autoGatewayProblem("auto", dev({ addresses: [a("2001:db8::5")], gw6: { gw: "fe80::1" } })),
    null,
  );
});

test("parseLinks learns the gateways of the routes, validated against the device's subnets", () => {
  const links = JSON.stringify([
    {
      ifname: "wan0",
      flags: ["UP", "LOWER_UP"],
      addr_info: [{ family: "inet", local: "192.0.2.10", prefixlen: 24, scope: "global" }],
    },
    {
      ifname: "tun0",
      flags: ["POINTOPOINT", "UP", "LOWER_UP"],
      addr_info: [
        { family: "inet", local: "100.64.9.2", address: "100.64.9.1", prefixlen: 32, scope: "global" },
      ],
    },
  ]);
  const v4 = JSON.stringify([
    { dst: "default", gateway: "192.0.2.1", dev: "wan0" },
    { dst: "default", gateway: "100.64.9.1", dev: "tun0" },
  ]);
  const m = parseLinks(links, ["wan0", "tun0", "wan9"], { v4, v6: "" });
  assert.deepEqual(m.get("wan0")?.gw4, { gw: "192.0.2.1" });
  assert.deepEqual(m.get("tun0")?.gw4, { gw: "100.64.9.1" }, "a point-to-point peer is on-link");
  assert.equal(m.get("wan9")?.gw4, undefined);
  const bad = parseLinks(links, ["wan0"], {
    v4: JSON.stringify([{ dst: "default", gateway: "203.0.113.1", dev: "wan0" }]),
    v6: "",
  });
  assert.match(bad.get("wan0")?.gw4?.refused ?? "", /outside its subnets/);
});

const facts = (...ifs: InterfaceFacts[]): Facts => ({
  complete: true,
  interfaces: new Map([
    ["lo", { name: "lo", up: true, addresses: [] }],
    ...ifs.map((i) => [i.name, i] as const),
  ]),
});

test("plan: an absent interface is down and routed nowhere; auto uses the learned gateway, or nothing", () => {
  const c = parseConfig(`version: 1
uplinks:
  dhcp: { interface: wan0, gateway: auto }
  vpn: { interface: tun1 }
  fixed: { interface: wan2, gateway: 198.51.100.1 }
`);
  const wan0 = { name: "wan0", up: true, addresses: [a("192.0.2.10")], subnets: [net("192.0.2.10", 24)] };
  const wan2 = { name: "wan2", up: true, addresses: [a("198.51.100.2")] };
  const learned = planUplinks(c, allUp(c), facts({ ...wan0, gw4: { gw: "192.0.2.1" } }, wan2))!;
  const byName = (n: string) => learned.uplinks.find((u) => u.name === n);
  assert.equal(byName("dhcp")?.gw4, "192.0.2.1");
  assert.equal(byName("dhcp")?.live, true);
  assert.equal(byName("vpn")?.absent, true);
  assert.equal(byName("vpn")?.live, false);
  assert.deepEqual(learned.split4?.slots.sort(), ["dhcp", "fixed"]);
  const routes = planRouting(learned).routes.filter((r) => r.table !== learned.tableBase);
  assert.deepEqual(
    routes.map((r) => r.nexthops),
    [[{ via: "192.0.2.1", dev: "wan0" }], [{ via: "198.51.100.1", dev: "wan2" }]],
  );
  // auto without a learned gateway: no on-link fallback, not in the split.
  const none = planUplinks(c, allUp(c), facts(wan0, wan2))!;
  assert.equal(none.uplinks.find((u) => u.name === "dhcp")?.live, false);
  assert.ok(!planRouting(none).routes.some((r) => r.nexthops.some((h) => h.dev === "wan0")));
  // Facts not read from the host (offline plan): nothing is absent.
  const offline = planUplinks(c, allUp(c), { interfaces: new Map([["wan0", wan0]]) })!;
  assert.equal(offline.uplinks.find((u) => u.name === "vpn")?.absent, undefined);
});

test("familyProblem: why an uplink cannot carry a family, in the status's words", () => {
  const c = parseConfig(`version: 1
uplinks:
  dhcp: { interface: wan0, gateway: auto }
  vpn: { interface: tun1 }
  tun: { interface: tun0 }
  fixed: { interface: wan2, gateway: 198.51.100.1 }
`);
  const wan0 = { name: "wan0", up: true, addresses: [a("192.0.2.10")], subnets: [net("192.0.2.10", 24)] };
  const tun0 = { name: "tun0", up: true, addresses: [a("100.64.9.2")] };
  const wan2 = { name: "wan2", up: true, addresses: [a("198.51.100.2")] };
  const p = planUplinks(c, allUp(c), facts(wan0, tun0, wan2))!;
  const of = (n: string) => {
    const u = p.uplinks.find((x) => x.name === n)!;
    return [familyProblem(u, 4), familyProblem(u, 6)];
  };
  assert.deepEqual(of("dhcp"), ["no IPv4 gateway learned on wan0", "no IPv6 address on wan0"]);
  assert.deepEqual(of("vpn"), ["interface tun1 not present", "interface tun1 not present"]);
  assert.deepEqual(of("tun"), [null, "no IPv6 address on tun0"]);
  assert.deepEqual(of("fixed"), [null, "no IPv6 address on wan2"]);
});
