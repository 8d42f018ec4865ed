// Warnings: configs nflb runs, that probably do not do what the admin meant or share marks and
// tables with other tools. `check` prints them with path, line and a fix, and still exits 0.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { formatPath, type ConfigIssue } from "../../src/config/issues.ts";
import { parseConfigSource } from "../../src/config/load.ts";
import { systemCheck } from "../../src/config/system-checks.ts";
import { checkWarnings, systemWarnings } from "../../src/config/warnings.ts";
import { networkOf, parseAddr, type Addr } from "../../src/net/ip.ts";
import type { Facts, InterfaceFacts } from "../../src/plan/types.ts";
import { TWO_PROBED_UPLINKS } from "../../testkit/config-text.ts";

const base = TWO_PROBED_UPLINKS;

const warningsOf = (text: string) => parseConfigSource(text).warnings;
const at = (ws: ConfigIssue[], path: string) => ws.filter((w) => formatPath(w.path) === path);

function iface(name: string, cidrs: string[]): InterfaceFacts {
  const addrs = cidrs.map((c) => {
    const [a, len] = c.split("/");
    return { addr: parseAddr(a ?? "") as Addr, len: Number(len) };
  });
  return {
    name,
    up: true,
    addresses: addrs.map((a) => a.addr),
    subnets: addrs.map((a) => networkOf(a.addr, a.len)),
  };
}
const facts = (...list: InterfaceFacts[]): Facts => ({ interfaces: new Map(list.map((i) => [i.name, i])) });

test("a config that follows the advice has no warnings", () => {
  assert.deepEqual(warningsOf(base), []);
});

test("an uplink without probe targets: it will never fail over on an upstream outage", () => {
  const ws = warningsOf(base.replace("    probe: { targets: [198.18.100.2] }\n", ""));
  const [w] = at(ws, "uplinks.isp2.probe.targets");
  assert.ok(w, JSON.stringify(ws));
  assert.equal(w.line, 7, "the uplink's line: where probe: goes");
  assert.match(w.message, /never fail over on an upstream outage; add targets/);
  // One uplink alone has nothing to fail over to.
  assert.deepEqual(warningsOf("version: 1\nuplinks:\n  isp1: { interface: wan1 }\n"), []);
});

test("a mark mask in the low byte, where most tools put their marks", () => {
  const ws = warningsOf(base + "mark_mask: 0xff\n");
  const [w] = at(ws, "mark_mask");
  assert.equal(w?.line, 11);
  assert.match(w?.message ?? "", /low byte \(0xff\).*set mark_mask: 0xff00/);
});

test("a WireGuard uplink with a mask over wg-quick's fwmark 0xca6c", () => {
  const ws = warningsOf(base + "  vpn: { interface: wg0, probe: { targets: [10.66.0.1] } }\n");
  const [w] = at(ws, "mark_mask");
  assert.match(w?.message ?? "", /overlaps bits 0xca00 of wg-quick.*wg0.*set mark_mask: 0xff0000/);
  assert.deepEqual(
    at(
      warningsOf(
        base.replace("version: 1", "version: 1\nmark_mask: 0xff0000") +
          "  vpn: { interface: wg0, probe: { targets: [10.66.0.1] } }\n",
      ),
      "mark_mask",
    ),
    [],
  );
});

test("tables shared with strongSwan (220) warn; the kernel's own tables are errors elsewhere", () => {
  const [w] = at(warningsOf(base + "table_base: 219\n"), "table_base");
  assert.equal(w?.line, 11);
  assert.match(w?.message ?? "", /table 220, used by strongSwan.*move table_base/);
});

test("system: a gateway outside the interface's subnets", () => {
  const c = parseConfigSource(base.replace("100.64.2.1", "100.64.9.1"));
  const ws = c.locate(
    systemWarnings(c.config, facts(iface("wan1", ["100.64.1.2/24"]), iface("wan2", ["100.64.2.2/24"]))),
  );
  const [w] = at(ws, "uplinks.isp2.gateway");
  assert.equal(w?.line, 9);
  assert.match(w?.message ?? "", /gateway 100\.64\.9\.1 is outside wan2's subnets \(100\.64\.2\.0\/24\)/);
  assert.equal(ws.length, 1, JSON.stringify(ws));
  // Inside the subnet, a point-to-point peer, an IPv6 link-local router, or nothing known: no warning.
  const ok = parseConfigSource(base.replace("100.64.2.1", "[100.64.2.1, 'fe80::1']"));
  assert.deepEqual(
    systemWarnings(
      ok.config,
      facts(iface("wan1", ["100.64.1.2/24"]), iface("wan2", ["100.64.2.2/24", "2001:db8::2/64"])),
    ),
    [],
  );
  assert.deepEqual(
    systemWarnings(
      ok.config,
      facts({ name: "wan1", up: true, addresses: [] }, { name: "wan2", up: true, addresses: [] }),
    ),
    [],
  );
});

test("system: tools seen on the host whose marks overlap the mask", () => {
  const c = parseConfigSource(base);
  const ws = systemWarnings(c.config, facts(iface("wan1", []), iface("wan2", []), iface("cilium_host", [])));
  assert.match(ws[0]?.message ?? "", /overlaps bits 0xf00 of Cilium.*cilium_host on this host/);
  const t = systemWarnings(
    parseConfigSource(base + "mark_mask: 0xff0000\n").config,
    facts(iface("wan1", []), iface("wan2", []), iface("tailscale0", [])),
  );
  assert.match(t[0]?.message ?? "", /Tailscale.*set mark_mask: 0xff00\b/);
});

test("system: more addresses than nflb's from-rules have room for is an error", () => {
  const c = parseConfigSource(base).config;
  const many = Array.from({ length: 201 }, (_, i) => `2001:db8::${(i + 1).toString(16)}/64`);
  const issues = systemCheck(c, facts(iface("wan1", ["100.64.1.2/24"]), iface("wan2", many)));
  assert.equal(issues.length, 1, JSON.stringify(issues));
  assert.deepEqual(issues[0]?.path, ["uplinks", "isp2", "interface"]);
  assert.match(issues[0]?.message ?? "", /more than 200 IPv6 addresses.*room for 200/);
  assert.deepEqual(systemCheck(c, facts(iface("wan1", []), iface("wan2", many.slice(0, 200)))), []);
});

test("system: a missing uplink interface is a warning, not an error (it may come later)", () => {
  const c = parseConfigSource(base).config;
  const f = facts(iface("wan1", []));
  assert.deepEqual(systemCheck(c, f), []);
  const w = systemWarnings(c, f).find((x) => x.path.join(".") === "uplinks.isp2.interface");
  assert.match(
    w?.message ?? "",
    /interface wan2 not present on this host: the uplink stays down until it appears/,
  );
});

test("system: snat on an interface without an address yet is a warning", () => {
  const c = parseConfigSource(
    base.replace("    gateway: 100.64.2.1\n", "    gateway: 100.64.2.1\n    nat: snat\n"),
  ).config;
  const f = facts(iface("wan1", []), iface("wan2", []));
  assert.deepEqual(systemCheck(c, f), []);
  const w = systemWarnings(c, f).find((x) => x.path.join(".") === "uplinks.isp2.nat");
  assert.match(w?.message ?? "", /snat needs an address on wan2, which has none now/);
});

test("checkWarnings: the config's own, plus the host's unless offline", () => {
  const loaded = parseConfigSource(base.replace("100.64.2.1", "100.64.9.1") + "mark_mask: 0xff\n");
  const f = facts(iface("wan1", ["100.64.1.2/24"]), iface("wan2", ["100.64.2.2/24"]));
  assert.equal(checkWarnings(loaded, null).length, 1);
  assert.equal(checkWarnings(loaded, f).length, 2);
  assert.ok(checkWarnings(loaded, f).every((w) => (w.line ?? 0) > 0));
});

test("nflb check prints warnings with path, line and fix, and exits 0", () => {
  const dir = mkdtempSync(join(tmpdir(), "nflb-check-"));
  try {
    const file = join(dir, "nflb.yaml");
    writeFileSync(file, base.replace("    probe: { targets: [198.18.100.2] }\n", "") + "mark_mask: 0xff\n");
    const bin = new URL("../../bin/nflb", import.meta.url).pathname;
    const r = spawnSync(bin, ["check", "--offline", "-c", file], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /valid \(2 uplinks\)/);
    assert.match(r.stderr, /warning: uplinks\.isp2\.probe\.targets \(line 7, column 3\): no probe targets/);
    assert.match(r.stderr, /warning: mark_mask \(line 10, column 12\): .*set mark_mask: 0xff00/);
    writeFileSync(file, base + "table_base: 253\n");
    const bad = spawnSync(bin, ["check", "--offline", "-c", file], { encoding: "utf8", timeout: 60_000 });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /table_base \(line 11, column 13\): .*254 \(main\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
