// The operator routes of src/api/routes-control.ts through the real fastify app (inject, no socket).
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildApi, type ActionResult, type ApiDaemon } from "../../src/api/server.ts";
import type { ControlDaemon, ReloadOutcome } from "../../src/api/routes-control.ts";
import { EventLog } from "../../src/daemon/events.ts";
import type { StatusJson } from "../../src/daemon/status.ts";

function fake(reload: ReloadOutcome = { ok: true, config_version: "abc", applied: "full" }) {
  const calls: string[] = [];
  const ok = (body: Record<string, unknown>): ActionResult => ({ ok: true, body });
  const d: ApiDaemon & ControlDaemon = {
    status: async () => ({}) as StatusJson,
    setUplinkEnabled: async () => ok({}),
    setBackendDrained: async (svc, b, drained) => (
      calls.push(`${drained ? "drain" : "enable"} ${svc} ${b}`),
      ok({})
    ),
    setBackendMaint: async (svc, b) => {
      calls.push(`maint ${svc} ${b}`);
      return svc === "web"
        ? ok({ service: svc, backend: b, state: "maint" })
        : { ok: false, status: 404, error: `no service ${svc}` };
    },
    setBackendWeight: async (svc, b, w) => (calls.push(`weight ${svc} ${b} ${w}`), ok({ weight: w })),
    reloadConfig: async () => (calls.push("reload"), reload),
    token: () => null,
    events: new EventLog(),
    metrics: async () => ({ contentType: "text/plain", body: "" }),
  };
  return { d, calls };
}

test("maint: its own route, next to drain/enable; unknown service 404", async () => {
  const f = fake();
  const app = buildApi(f.d);
  const r = await app.inject({ method: "POST", url: "/api/v1/services/web/backends/10.1.1.1%3A80/maint" });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { service: "web", backend: "10.1.1.1:80", state: "maint" });
  const en = await app.inject({ method: "POST", url: "/api/v1/services/web/backends/10.1.1.1:80/enable" });
  assert.equal(en.statusCode, 200);
  const nope = await app.inject({ method: "POST", url: "/api/v1/services/db/backends/10.1.1.1:80/maint" });
  assert.equal(nope.statusCode, 404);
  assert.equal(
    (await app.inject({ method: "POST", url: "/api/v1/services/web/backends/x/explode" })).statusCode,
    404,
  );
  assert.deepEqual(f.calls, ["maint web 10.1.1.1:80", "enable web 10.1.1.1:80", "maint db 10.1.1.1:80"]);
  await app.close();
});

test('weight: a JSON body {"weight": N}, N an integer 0..10000; anything else 400', async () => {
  const f = fake();
  const app = buildApi(f.d);
  const post = (payload: string, type = "application/json") =>
    app.inject({
      method: "POST",
      url: "/api/v1/services/web/backends/10.1.1.1:80/weight",
      headers: { "content-type": type },
      payload,
    });
  const r = await post('{"weight": 5}');
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual(r.json(), { weight: 5 });
  for (const bad of [
    '{"weight": -1}',
    '{"weight": 1.5}',
    '{"weight": "5"}',
    '{"weight": 10001}',
    "{}",
    "[5]",
    "not json",
  ])
    assert.equal((await post(bad)).statusCode, 400, bad);
  assert.equal((await post("weight=5", "application/x-www-form-urlencoded")).statusCode, 400);
  assert.equal((await post(JSON.stringify({ weight: 1, pad: "x".repeat(2000) }))).statusCode, 413);
  assert.deepEqual(f.calls, ["weight web 10.1.1.1:80 5"]);
  await app.close();
});

test("reload: 200 once applied, 422 for an invalid config (with where), 409 when the kernel refused it", async () => {
  const cases: [ReloadOutcome, number][] = [
    [{ ok: true, config_version: "abc", applied: "update" }, 200],
    [
      {
        ok: false,
        kind: "config",
        error: "f: invalid config\n  uplinks.isp1.weight (line 3): bad",
        file: "f",
        issues: [{ path: ["uplinks", "isp1", "weight"], message: "bad", line: 3 }],
      },
      422,
    ],
    [{ ok: false, kind: "apply", error: "the new config failed to apply: nft said no" }, 409],
    [{ ok: false, kind: "stopping", error: "stopping" }, 503],
  ];
  for (const [outcome, code] of cases) {
    const app = buildApi(fake(outcome).d);
    const r = await app.inject({ method: "POST", url: "/api/v1/reload" });
    assert.equal(r.statusCode, code);
    assert.deepEqual(r.json(), outcome);
    await app.close();
  }
});

test("the new routes are guarded like the others; a daemon without them answers 501", async () => {
  const f = fake();
  const app = buildApi(f.d);
  const far = await app.inject({ method: "POST", url: "/api/v1/reload", remoteAddress: "192.0.2.9" });
  assert.equal(far.statusCode, 403);
  const farW = await app.inject({
    method: "POST",
    url: "/api/v1/services/web/backends/10.1.1.1:80/weight",
    remoteAddress: "192.0.2.9",
    headers: { "content-type": "application/json" },
    payload: '{"weight": 1}',
  });
  assert.equal(farW.statusCode, 403);
  assert.deepEqual(f.calls, []);
  await app.close();

  const { setBackendMaint: _m, setBackendWeight: _w, reloadConfig: _r, ...plain } = f.d;
  const old = buildApi(plain);
  assert.equal((await old.inject({ method: "POST", url: "/api/v1/reload" })).statusCode, 501);
  await old.close();
});
