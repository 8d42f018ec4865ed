import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import { uplinkPlan } from "../../src/lab/addressing.ts";
import { demoBackend } from "../../src/lab/demo-backends.ts";
import { DEMO, DEMO_API, demoConfig, demoTrafficTargets, newToken } from "../../src/lab/demo.ts";
import { pickTarget, trafficArgv, trafficTargetSchema } from "../../src/lab/demo-traffic.ts";

const uplinks = [1, 2, 3].map(uplinkPlan);
const backends = [1, 2, 3].map((i) => `${demoBackend(i).address}:${demoBackend(i).port}`);

test("the demo config is valid and shows uplinks, a rule and a service", () => {
  const token = newToken();
  const c = parseConfig(demoConfig({ uplinks, backends, token }));
  assert.deepEqual(Object.keys(c.uplinks ?? {}), ["isp1", "isp2", "isp3"]);
  assert.deepEqual(
    Object.values(c.uplinks ?? {}).map((u) => [u.interface, u.weight, u.probe.targets.length]),
    [
      ["wan1", 3, 2],
      ["wan2", 2, 2],
      ["wan3", 1, 2],
    ],
  );
  assert.equal(c.rules.length, 1);
  assert.deepEqual(c.rules[0]?.via, ["isp2", "isp1"]);
  const web = c.services?.[DEMO.service];
  assert.equal(web?.listen, `${DEMO.vip}:${DEMO.servicePort}`);
  assert.deepEqual(
    web?.backends.map((b) => b.address),
    ["198.51.100.11:80", "198.51.100.12:80", "198.51.100.13:80"],
  );
  assert.equal(c.api.listen, DEMO_API);
  assert.equal(c.api.token, token);
});

test("probes fail over well within the dashboard's 2 s promise", () => {
  const c = parseConfig(demoConfig({ uplinks, backends, token: newToken() }));
  for (const u of Object.values(c.uplinks ?? {})) {
    const worst = u.probe.down_after * u.probe.interval + u.probe.timeout;
    assert.ok(worst <= 1200, `${worst} ms`);
  }
});

test("tokens are long enough for api.token and differ", () => {
  const a = newToken();
  assert.ok(a.length >= 8);
  assert.notEqual(a, newToken());
});

test("traffic targets pick by weight", () => {
  const t = [
    { weight: 6, n: "a" },
    { weight: 1, n: "b" },
    { weight: 3, n: "c" },
  ];
  assert.equal(pickTarget(t, 0).n, "a");
  assert.equal(pickTarget(t, 0.59).n, "a");
  assert.equal(pickTarget(t, 0.6).n, "b");
  assert.equal(pickTarget(t, 0.7).n, "c");
  assert.equal(pickTarget(t, 0.999).n, "c");
  for (const target of demoTrafficTargets()) assert.ok(trafficTargetSchema.safeParse(target).success);
});

test("the traffic command line carries the bounds", () => {
  const argv = trafficArgv({ targets: demoTrafficTargets(), rate: 20, durationMs: 600_000 });
  assert.deepEqual(argv.slice(-4), ["--rate", "20", "--duration-ms", "600000"]);
  assert.ok(argv.some((a) => a.endsWith("demo-traffic.ts")));
});
