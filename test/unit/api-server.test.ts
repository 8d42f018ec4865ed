import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildApi, type ActionResult, type ApiDaemon } from "../../src/api/server.ts";
import { authorize, isLoopback } from "../../src/api/auth.ts";
import { EventLog } from "../../src/daemon/events.ts";
import type { StatusJson } from "../../src/daemon/status.ts";

const STATUS: StatusJson = {
  uplinks: [
    {
      name: "isp1",
      interface: "wan1",
      state: "up",
      reason: "",
      since: null,
      weight: 1,
      effective_weight: 1,
      share: 1,
      rtt_ms: 3.5,
      jitter_ms: 0.2,
      loss: 0,
      connections: 12,
      probed: true,
    },
  ],
  services: [],
  cluster: null,
  applied_at: "2025-01-01T00:00:00.000Z",
  config_version: "abc",
  config_file: "/etc/nflb/nflb.yaml",
  started_at: "2025-01-01T00:00:00.000Z",
  last_reload_error: null,
  keeping_last_data_plane: false,
};

function fake(token: string | null = null) {
  const calls: string[] = [];
  const events = new EventLog();
  const d: ApiDaemon = {
    status: async () => STATUS,
    setUplinkEnabled: async (name, enabled): Promise<ActionResult> => {
      calls.push(`${name} ${enabled ? "enable" : "disable"}`);
      return name === "isp1"
        ? { ok: true, body: { uplink: name, state: enabled ? "up" : "disabled" } }
        : { ok: false, status: 404, error: `no uplink ${name}` };
    },
    setBackendDrained: async (svc, backend, drained): Promise<ActionResult> => {
      calls.push(`${svc} ${backend} ${drained ? "drain" : "enable"}`);
      return { ok: true, body: { service: svc, backend } };
    },
    token: () => token,
    events,
    metrics: async () => ({
      contentType: "text/plain; version=0.0.4; charset=utf-8",
      body: "nflb_uplink_up 1\n",
    }),
  };
  return { d, calls, events };
}

test("GET /api/v1/status answers the daemon's JSON", async () => {
  const app = buildApi(fake().d);
  const r = await app.inject({ method: "GET", url: "/api/v1/status" });
  assert.equal(r.statusCode, 200);
  assert.deepEqual(r.json(), STATUS);
  await app.close();
});

test("without a token, changes are accepted from loopback only", async () => {
  const f = fake();
  const app = buildApi(f.d);
  const local = await app.inject({ method: "POST", url: "/api/v1/uplinks/isp1/disable" });
  assert.equal(local.statusCode, 200);
  assert.deepEqual(local.json(), { uplink: "isp1", state: "disabled" });
  const local6 = await app.inject({
    method: "POST",
    url: "/api/v1/uplinks/isp1/enable",
    remoteAddress: "::1",
  });
  assert.equal(local6.statusCode, 200);
  const remote = await app.inject({
    method: "POST",
    url: "/api/v1/uplinks/isp1/disable",
    remoteAddress: "192.0.2.7",
  });
  assert.equal(remote.statusCode, 403);
  assert.match(remote.json().error, /loopback only/);
  assert.deepEqual(f.calls, ["isp1 disable", "isp1 enable"], "a refused call reaches nothing");
  await app.close();
});

test("with a token, every change needs it, from anywhere", async () => {
  const f = fake("s3cret-token");
  const app = buildApi(f.d);
  const url = "/api/v1/uplinks/isp1/disable";
  const none = await app.inject({ method: "POST", url });
  assert.equal(none.statusCode, 401, "loopback is not enough once a token is set");
  const wrong = await app.inject({ method: "POST", url, headers: { authorization: "Bearer nope" } });
  assert.equal(wrong.statusCode, 401);
  const right = await app.inject({
    method: "POST",
    url,
    remoteAddress: "198.51.100.9",
    headers: { authorization: "Bearer s3cret-token", "content-type": "application/json" },
  });
  assert.equal(right.statusCode, 200);
  assert.deepEqual(f.calls, ["isp1 disable"]);
  // Reading never needs the token.
  assert.equal((await app.inject({ url: "/api/v1/status", remoteAddress: "198.51.100.9" })).statusCode, 200);
  await app.close();
});

test("a cross-origin browser request is refused", async () => {
  const app = buildApi(fake().d);
  const r = await app.inject({
    method: "POST",
    url: "/api/v1/uplinks/isp1/disable",
    headers: { origin: "http://evil.example", host: "127.0.0.1:9110" },
  });
  assert.equal(r.statusCode, 403);
  const same = await app.inject({
    method: "POST",
    url: "/api/v1/uplinks/isp1/disable",
    headers: { origin: "http://127.0.0.1:9110", host: "127.0.0.1:9110" },
  });
  assert.equal(same.statusCode, 200);
  await app.close();
});

test("unknown names and actions are 404", async () => {
  const app = buildApi(fake().d);
  assert.equal((await app.inject({ method: "POST", url: "/api/v1/uplinks/isp9/disable" })).statusCode, 404);
  assert.equal((await app.inject({ method: "POST", url: "/api/v1/uplinks/isp1/reboot" })).statusCode, 404);
  assert.equal((await app.inject({ method: "GET", url: "/api/v1/uplinks/isp1/disable" })).statusCode, 404);
  assert.equal((await app.inject({ method: "GET", url: "/api/v2/status" })).statusCode, 404);
  await app.close();
});

test("backend drain/enable take the address as written, IPv6 percent-encoded", async () => {
  const f = fake();
  const app = buildApi(f.d);
  const a = await app.inject({ method: "POST", url: "/api/v1/services/web/backends/10.1.1.1:80/drain" });
  assert.equal(a.statusCode, 200);
  const b = await app.inject({
    method: "POST",
    url: `/api/v1/services/web/backends/${encodeURIComponent("[2001:db8::5]:80")}/enable`,
  });
  assert.equal(b.statusCode, 200);
  const bad = await app.inject({ method: "POST", url: "/api/v1/services/web/backends/10.1.1.1:80/stop" });
  assert.equal(bad.statusCode, 404);
  assert.deepEqual(f.calls, ["web 10.1.1.1:80 drain", "web [2001:db8::5]:80 enable"]);
  await app.close();
});

test("GET /metrics is Prometheus text; GET / is the dashboard", async () => {
  const dir = await mkdtemp(join(tmpdir(), "nflb-api-"));
  const html = join(dir, "index.html");
  await writeFile(html, "<!doctype html><title>nflb</title>");
  const app = buildApi(fake().d, { dashboardFile: html });
  const m = await app.inject({ url: "/metrics" });
  assert.equal(m.statusCode, 200);
  assert.match(String(m.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
  assert.equal(m.body, "nflb_uplink_up 1\n");
  const d = await app.inject({ url: "/" });
  assert.equal(d.statusCode, 200);
  assert.match(String(d.headers["content-type"]), /^text\/html/);
  assert.match(d.body, /<title>nflb<\/title>/);
  await app.close();
  // The placeholder shipped in the repo is served by default.
  const real = buildApi(fake().d);
  assert.match((await real.inject({ url: "/" })).body, /<html/);
  await real.close();
});

test("GET /api/v1/events streams one frame per change, replays after Last-Event-ID, and beats", async () => {
  const f = fake();
  f.events.publish({ kind: "uplink", name: "isp1", state: "down", reason: "before" });
  const app = buildApi(f.d, { heartbeatMs: 20 });
  const pending = app.inject({ url: "/api/v1/events", headers: { "last-event-id": "0" } });
  await new Promise((r) => setTimeout(r, 60));
  f.events.publish({ kind: "uplink", name: "isp1", state: "up", reason: "10 good rounds" });
  await app.close();
  const r = await pending;
  assert.equal(r.statusCode, 200);
  assert.match(String(r.headers["content-type"]), /^text\/event-stream/);
  const frames = r.body.split("\n\n").filter((x) => x.startsWith("id:"));
  assert.equal(frames.length, 2);
  const data = frames.map((x) => JSON.parse(x.split("\ndata: ")[1] ?? "") as { reason: string; id: number });
  assert.deepEqual(
    data.map((e) => [e.id, e.reason]),
    [
      [1, "before"],
      [2, "10 good rounds"],
    ],
  );
  assert.match(r.body, /^: heartbeat$/m);
  assert.equal(f.events.listenerCount("event"), 0, "the stream unsubscribed when it ended");
});

test("loopback and token checks", () => {
  for (const a of ["127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"])
    assert.ok(isLoopback(a), a);
  for (const a of [undefined, "", "192.0.2.1", "::", "::2", "::ffff:192.0.2.1", "fe80::1"])
    assert.ok(!isLoopback(a), String(a));
  assert.deepEqual(authorize("tok-12345", { authorization: "bearer tok-12345" }), { ok: true });
  assert.equal(authorize("tok-12345", { authorization: "Bearer tok-1234" }).ok, false);
  assert.equal(authorize("tok-12345", { authorization: "Basic tok-12345" }).ok, false);
});
