import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { issuesOf, TWO_UPLINKS } from "../../testkit/config-text.ts";

const base = TWO_UPLINKS;

test("a minimal config gets typed defaults", () => {
  const c = parseConfig(base);
  assert.equal(c.mark_mask, 0xff00);
  assert.equal(c.table_base, 200);
  assert.equal(c.rule_priority_base, 10000);
  assert.equal(c.uplinks?.isp1?.nat, "masquerade");
  assert.equal(c.uplinks?.isp1?.probe.interval, 200);
  assert.equal(c.uplinks?.isp1?.probe.down_after, 3);
  assert.equal(c.balance.method, "random");
  assert.equal(c.balance.flush_on_down, true);
  assert.equal(c.api.listen, "127.0.0.1:9110");
});

test("unknown key names its path and line", () => {
  const [i] = issuesOf(base + "    bogus: 1\n");
  assert.deepEqual(i?.path, ["uplinks", "isp2", "bogus"]);
  assert.equal(i?.line, 11);
  assert.match(i?.message ?? "", /unknown key bogus/);
});

test("negative weight names its path and line", () => {
  const [i] = issuesOf(base.replace("weight: 1", "weight: -1"));
  assert.deepEqual(i?.path, ["uplinks", "isp2", "weight"]);
  assert.equal(i?.line, 10);
});

test("invalid prefix is rejected with a hint", () => {
  const [i] = issuesOf(base + "rules:\n  - name: x\n    destination: [10.0.0.1/8]\n    via: [isp1]\n");
  assert.deepEqual(i?.path, ["rules", 0, "destination", 0]);
  assert.equal(i?.line, 13);
  assert.match(i?.message ?? "", /host bits.*10\.0\.0\.0\/8/);
  const [j] = issuesOf(base + "rules:\n  - name: x\n    destination: [300.1.1.0/24]\n    via: [isp1]\n");
  assert.match(j?.message ?? "", /not an IPv4 or IPv6 address/);
});

test("unknown uplink in via is rejected", () => {
  const [i] = issuesOf(
    base + "rules:\n  - name: x\n    destination: [203.0.113.0/24]\n    via: [isp1, isp9]\n",
  );
  assert.deepEqual(i?.path, ["rules", 0, "via", 1]);
  assert.equal(i?.line, 14);
  assert.match(i?.message ?? "", /unknown uplink isp9/);
});

test("cross checks: unique interfaces, some weight, sensible probes", () => {
  const dup = issuesOf(base.replace("interface: wan2", "interface: wan1"));
  assert.match(dup[0]?.message ?? "", /already used by uplink isp1/);
  const zero = issuesOf(base.replace("weight: 3", "weight: 0").replace("weight: 1", "weight: 0"));
  assert.match(zero[0]?.message ?? "", /at least one uplink needs a weight above 0/);
  const empty = issuesOf("version: 1\n");
  assert.match(empty[0]?.message ?? "", /at least one of/);
});

test("durations, ports and YAML syntax errors", () => {
  const d = issuesOf(base + "    probe: { interval: 2 seconds }\n");
  assert.deepEqual(d[0]?.path, ["uplinks", "isp2", "probe", "interval"]);
  const p = issuesOf(base + "rules:\n  - { name: x, protocol: tcp, port: 70000, via: [isp1] }\n");
  assert.deepEqual(p[0]?.path.slice(0, 3), ["rules", 0, "port"]);
  const y = issuesOf(base + "  bad: [\n");
  assert.match(y[0]?.message ?? "", /YAML syntax/);
  assert.ok((y[0]?.line ?? 0) > 0);
});

test("services and cluster sections validate", () => {
  const c = parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:80
    backends:
      - { address: 198.51.100.11:80 }
      - { address: 198.51.100.12:80, weight: 0 }
cluster:
  name: web
  vip: 192.0.2.2
  interface: eth0
`);
  assert.equal(c.services?.web?.scheduler, "round-robin");
  assert.equal(c.cluster?.buckets, 256);
  const fam = issuesOf(`version: 1
services:
  web:
    listen: 203.0.113.10:80
    backends: [{ address: "[2001:db8::1]:80" }]
`);
  assert.match(fam[0]?.message ?? "", /same IP family/);
});
