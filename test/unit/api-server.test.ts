import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LIMITS, buildApi, type ActionResult, type ApiDaemon } from "../../src/api/server.ts";
import { authorize, isLoopback } from "../../src/api/auth.ts";
import { HEARTBEAT_MS, clientKey } from "../../src/api/events.ts";
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

/** The per-start secret the daemon put into the dashboard page. */
function csrfOf(html: string): string {
  const m = /<meta name="nflb-csrf" content="([^"]*)"/.exec(html);
  assert.ok(m?.[1], "the page has the CSRF meta tag");
  return m[1];
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

test("a cross-origin browser request is refused; the daemon's own page needs its CSRF secret", async () => {
  const app = buildApi(fake().d, { listen: "127.0.0.1:9110" });
  const url = "/api/v1/uplinks/isp1/disable";
  const own = { origin: "http://127.0.0.1:9110", host: "127.0.0.1:9110", "sec-fetch-site": "same-origin" };
  const evil = await app.inject({
    method: "POST",
    url,
    headers: { origin: "http://evil.example", host: "127.0.0.1:9110", "sec-fetch-site": "cross-site" },
  });
  assert.equal(evil.statusCode, 403);
  assert.match(evil.json().error, /cross-origin/);
  const noSecret = await app.inject({ method: "POST", url, headers: own });
  assert.equal(noSecret.statusCode, 403, "same origin but no CSRF secret");
  assert.match(noSecret.json().error, /CSRF/);
  const wrong = await app.inject({ method: "POST", url, headers: { ...own, "x-nflb-csrf": "guess" } });
  assert.equal(wrong.statusCode, 403);
  const secret = csrfOf((await app.inject({ url: "/", headers: { host: "127.0.0.1:9110" } })).body);
  assert.ok(secret.length >= 40, "the page carries a long secret");
  const same = await app.inject({ method: "POST", url, headers: { ...own, "x-nflb-csrf": secret } });
  assert.equal(same.statusCode, 200);
  // Another start, another secret: a page from before a restart must be reloaded.
  const other = buildApi(fake().d, { listen: "127.0.0.1:9110" });
  assert.notEqual(
    csrfOf((await other.inject({ url: "/", headers: { host: "127.0.0.1:9110" } })).body),
    secret,
  );
  await other.close();
  await app.close();
});

test("Origin: null (sandboxed frame, data: URL) is a foreign page", async () => {
  const app = buildApi(fake().d, { listen: "127.0.0.1:9110" });
  const secret = csrfOf((await app.inject({ url: "/", headers: { host: "127.0.0.1:9110" } })).body);
  const r = await app.inject({
    method: "POST",
    url: "/api/v1/uplinks/isp1/disable",
    headers: { origin: "null", host: "127.0.0.1:9110", "x-nflb-csrf": secret },
  });
  assert.equal(r.statusCode, 403);
  assert.match(r.json().error, /cross-origin/);
  await app.close();
});

test("a rebinding Host is refused: no change, no dashboard (and so no secret)", async () => {
  const f = fake();
  const app = buildApi(f.d, { listen: "127.0.0.1:9110" });
  // evil.example resolves to 127.0.0.1 now: to the browser, the page and the API are one origin.
  const rebound = {
    origin: "http://evil.example:9110",
    host: "evil.example:9110",
    "sec-fetch-site": "same-origin",
  };
  const post = await app.inject({ method: "POST", url: "/api/v1/uplinks/isp1/disable", headers: rebound });
  assert.equal(post.statusCode, 403);
  assert.match(post.json().error, /Host "evil\.example:9110" is not an address of this daemon/);
  const page = await app.inject({ url: "/", headers: { host: "evil.example:9110" } });
  assert.equal(page.statusCode, 403);
  assert.doesNotMatch(page.body, /nflb-csrf/);
  const status = await app.inject({
    url: "/api/v1/status",
    headers: { host: "evil.example:9110", "sec-fetch-site": "same-origin" },
  });
  assert.equal(status.statusCode, 403, "a page cannot read the status through a rebound name either");
  // A curl/CLI POST by a name is refused too (without a token); the right port matters.
  const curl = await app.inject({
    method: "POST",
    url: "/api/v1/uplinks/isp1/disable",
    headers: { host: "router.lan:9110" },
  });
  assert.equal(curl.statusCode, 403);
  const port = await app.inject({
    method: "POST",
    url: "/api/v1/uplinks/isp1/disable",
    headers: { host: "127.0.0.1:9111" },
  });
  assert.equal(port.statusCode, 403);
  assert.deepEqual(f.calls, []);
  // Scripts reading status and metrics by any name still work (Prometheus scrapes router.lan:9110).
  for (const url of ["/metrics", "/api/v1/status"])
    assert.equal((await app.inject({ url, headers: { host: "router.lan:9110" } })).statusCode, 200, url);
  // localhost, [::1] and the listen address are this daemon.
  for (const host of ["localhost:9110", "[::1]:9110", "127.0.0.1:9110", "127.0.0.2:9110"])
    assert.equal(
      (await app.inject({ method: "POST", url: "/api/v1/uplinks/isp1/enable", headers: { host } }))
        .statusCode,
      200,
      host,
    );
  await app.close();
});

test("api.hosts names are served; a wildcard listen serves every IP literal but no other name", async () => {
  const app = buildApi(fake().d, { listen: "0.0.0.0:9110", hosts: () => ["router.lan", "gw.example:8443"] });
  const post = (host: string) =>
    app.inject({ method: "POST", url: "/api/v1/uplinks/isp1/enable", headers: { host } });
  for (const host of [
    "router.lan:9110",
    "ROUTER.LAN:9110",
    "gw.example:8443",
    "192.0.2.1:9110",
    "[2001:db8::1]:9110",
  ])
    assert.equal((await post(host)).statusCode, 200, host);
  for (const host of [
    "router.lan:80",
    "gw.example:9110",
    "evil.example:9110",
    "",
    "a b",
    "127.0.0.1:9110@evil",
  ])
    assert.equal((await post(host)).statusCode, 403, host);
  await app.close();
  const one = buildApi(fake().d, { listen: "192.0.2.1:9110" });
  assert.equal(
    (
      await one.inject({
        method: "POST",
        url: "/api/v1/uplinks/isp1/enable",
        headers: { host: "192.0.2.9:9110" },
      })
    ).statusCode,
    403,
    "not the address it listens on",
  );
  await one.close();
});

test("with a token, a page from anywhere may act by presenting it", async () => {
  const f = fake("s3cret-token");
  const app = buildApi(f.d, { listen: "127.0.0.1:9110" });
  const url = "/api/v1/uplinks/isp1/disable";
  const evil = { origin: "http://evil.example", host: "evil.example:9110", "sec-fetch-site": "cross-site" };
  assert.equal((await app.inject({ method: "POST", url, headers: evil })).statusCode, 403);
  const withToken = await app.inject({
    method: "POST",
    url,
    headers: { ...evil, authorization: "Bearer s3cret-token" },
  });
  assert.equal(withToken.statusCode, 200);
  // The dashboard's secret alone is not the token.
  const secret = csrfOf((await app.inject({ url: "/", headers: { host: "127.0.0.1:9110" } })).body);
  const own = { origin: "http://127.0.0.1:9110", host: "127.0.0.1:9110", "x-nflb-csrf": secret };
  assert.equal((await app.inject({ method: "POST", url, headers: own })).statusCode, 401);
  assert.deepEqual(f.calls, ["isp1 disable"]);
  await app.close();
});

test("names a plain object inherits (__proto__, constructor, toString) are 404", async () => {
  // The daemon looks names up in its config objects; a lookup that forgets Object.hasOwn finds these.
  const calls: string[] = [];
  const uplinks: Record<string, unknown> = { isp1: {} };
  const services: Record<string, unknown> = { web: {} };
  const d: ApiDaemon = {
    ...fake().d,
    setUplinkEnabled: async (name) => {
      calls.push(name);
      return uplinks[name] ? { ok: true, body: {} } : { ok: false, status: 404, error: `no uplink ${name}` };
    },
    setBackendDrained: async (svc) => {
      calls.push(svc);
      return services[svc] ? { ok: true, body: {} } : { ok: false, status: 404, error: `no service ${svc}` };
    },
  };
  const app = buildApi(d);
  // A route another module registers (as the control routes do) is covered too.
  void app.register(async (api) => {
    api.post<{ Params: { name: string } }>("/api/v1/other/:name", async (req) => {
      calls.push(`other ${req.params.name}`);
      return {};
    });
  });
  for (const name of ["__proto__", "constructor", "toString", "hasOwnProperty", "__defineGetter__"]) {
    assert.equal((await app.inject({ method: "POST", url: `/api/v1/other/${name}` })).statusCode, 404);
    const u = await app.inject({ method: "POST", url: `/api/v1/uplinks/${name}/disable` });
    assert.equal(u.statusCode, 404, name);
    const s = await app.inject({
      method: "POST",
      url: `/api/v1/services/${name}/backends/10.1.1.1:80/drain`,
    });
    assert.equal(s.statusCode, 404, name);
  }
  assert.deepEqual(calls, []);
  assert.equal((await app.inject({ method: "POST", url: "/api/v1/uplinks/isp1/disable" })).statusCode, 200);
  await app.close();
});

test("event streams are capped per client and in total", async () => {
  const f = fake();
  const app = buildApi(f.d, { maxStreams: 3, maxStreamsPerClient: 2 });
  const open = (remoteAddress: string) => app.inject({ url: "/api/v1/events", remoteAddress });
  const held = [open("127.0.0.1"), open("127.0.0.5")];
  await new Promise((r) => setTimeout(r, 30));
  // All of 127.0.0.0/8 is one client.
  const third = await open("127.0.0.9");
  assert.equal(third.statusCode, 503);
  assert.match(third.json().error, /from loopback/);
  held.push(open("2001:db8:1:2::7"));
  await new Promise((r) => setTimeout(r, 30));
  const full = await open("198.51.100.4");
  assert.equal(full.statusCode, 503);
  assert.match(full.json().error, /too many event streams open/);
  await app.close();
  for (const r of await Promise.all(held)) assert.equal(r.statusCode, 200);
  assert.equal(f.events.listenerCount("event"), 0);
});

test("stream slots: IPv4 by address, IPv6 by /64, loopback as one", () => {
  assert.equal(clientKey("127.0.0.1"), "loopback");
  assert.equal(clientKey("::ffff:127.3.0.1"), "loopback");
  assert.equal(clientKey("::1"), "loopback");
  assert.equal(clientKey("192.0.2.7"), "192.0.2.7");
  assert.equal(clientKey("::ffff:192.0.2.7"), "192.0.2.7");
  assert.equal(clientKey("2001:db8:1:2::7"), clientKey("2001:db8:1:2:ffff::1"));
  assert.notEqual(clientKey("2001:db8:1:2::7"), clientKey("2001:db8:1:3::7"));
});

test("bounded: body size, timeouts, connections", async () => {
  const app = buildApi(fake().d);
  const big = await app.inject({
    method: "POST",
    url: "/api/v1/uplinks/isp1/disable",
    headers: { "content-type": "application/json" },
    payload: "x".repeat(LIMITS.bodyBytes + 1),
  });
  assert.equal(big.statusCode, 413);
  assert.equal(app.server.maxConnections, LIMITS.maxConnections);
  assert.equal(app.server.requestTimeout, LIMITS.requestTimeoutMs);
  assert.equal(app.server.keepAliveTimeout, LIMITS.keepAliveTimeoutMs);
  assert.equal(app.server.timeout, LIMITS.connectionTimeoutMs);
  assert.ok(LIMITS.connectionTimeoutMs > 2 * HEARTBEAT_MS, "an idle event stream outlives its heartbeat");
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
  const served = { address: "127.0.0.1", port: 9110, names: [] };
  const req = (authorization: string) => ({ method: "POST", authorization, host: "127.0.0.1:9110" });
  assert.deepEqual(authorize("tok-12345", "csrf", req("bearer tok-12345"), served), { ok: true });
  assert.equal(authorize("tok-12345", "csrf", req("Bearer tok-1234"), served).ok, false);
  assert.equal(authorize("tok-12345", "csrf", req("Basic tok-12345"), served).ok, false);
});
