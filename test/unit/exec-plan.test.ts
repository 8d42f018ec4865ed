import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import {
  addElement,
  deleteElement,
  execCgroupName,
  execCgroupPid,
  planExec,
  staleExecCgroups,
} from "../../src/exec/plan.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";

const c = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1 }
  vpn: { interface: wg0, nat: none }
`);

test("exec --via: the uplink's pin chain, a cgroup named by pid, a warning for nat: none", () => {
  assert.deepEqual(planExec(c, "isp1", 4242), {
    uplink: "isp1",
    chain: "up_isp1_pin",
    cgroup: "nflb-exec-4242",
    warnings: [],
  });
  const vpn = planExec(c, "vpn", 7);
  assert.ok(!("error" in vpn));
  assert.match(vpn.warnings.join(), /nat: none/);
  assert.deepEqual(planExec(c, "isp9", 7), { error: "no uplink isp9 in the config (uplinks: isp1, vpn)" });
  const none = parseConfig(
    "version: 1\nservices:\n  web: { listen: 203.0.113.10:80, backends: [{ address: 10.0.0.1:80 }] }\n",
  );
  assert.deepEqual(planExec(none, "isp1", 7), { error: "the config has no uplinks" });
});

test("the element names the cgroup by its path below /sys/fs/cgroup", () => {
  const p = { chain: "up_isp1_pin", cgroup: execCgroupName(99) };
  assert.equal(addElement(p, ""), 'add element inet nflb exec_via { "nflb-exec-99" : goto up_isp1_pin }\n');
  assert.equal(
    addElement(p, "unified/"),
    'add element inet nflb exec_via { "unified/nflb-exec-99" : goto up_isp1_pin }\n',
  );
  assert.equal(
    deleteElement("nflb-exec-99", "unified/"),
    'delete element inet nflb exec_via { "unified/nflb-exec-99" }\n',
  );
  assert.throws(() => deleteElement('x" } ; flush ruleset ; {', ""), /unsafe/);
  assert.throws(() => deleteElement("../etc", ""), /unsafe/);
});

test("stale cgroups: only ours, only of pids that are gone", () => {
  assert.equal(execCgroupPid("nflb-exec-123"), 123);
  assert.equal(execCgroupPid("nflb-exec-12a"), null);
  assert.equal(execCgroupPid("system.slice"), null);
  const alive = new Set([1, 2]);
  assert.deepEqual(
    staleExecCgroups(["system.slice", "nflb-exec-1", "nflb-exec-3", "nflb-exec-x", "user.slice"], (p) =>
      alive.has(p),
    ),
    ["nflb-exec-3"],
  );
});

test("the table always has the exec map, steered from the output route chain after restore_mark", () => {
  const nft = desiredState(c, allHealthy(c), { interfaces: new Map() }).nft;
  assert.match(nft, /map exec_via \{\n\t\ttypeof socket cgroupv2 level 1 : verdict\n\t\}/);
  const output = /chain output \{\n([\s\S]*?)\n\t\}/.exec(nft)?.[1] ?? "";
  assert.deepEqual(
    output.split("\n").map((l) => l.trim()),
    [
      "type route hook output priority mangle; policy accept;",
      "meta mark 0 ct mark and 0x0000ff00 != 0 meta mark set ct mark and 0x0000ff00 accept",
      "meta mark != 0 ct mark and 0x0000ff00 vmap @restore_mark",
      "socket cgroupv2 level 1 vmap @exec_via",
    ],
  );
});
