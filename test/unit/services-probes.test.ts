import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { httpCheck, tcpCheck, type BackendCheckSpec } from "../../src/health/backend-probes.ts";
import { parseAddr } from "../../src/net/ip.ts";

// Loopback sockets only: the checks against real servers, without a lab.
const spec = (port: number, o: Partial<BackendCheckSpec> = {}): BackendCheckSpec => ({
  service: "web",
  backend: `127.0.0.1:${port}`,
  address: parseAddr("127.0.0.1") ?? assert.fail(),
  port,
  method: "tcp",
  path: "/",
  intervalMs: 1000,
  timeoutMs: 1000,
  rise: 1,
  fall: 1,
  ...o,
});

const listen = (s: Server | ReturnType<typeof createServer>) =>
  new Promise<number>((r) => s.listen(0, "127.0.0.1", () => r((s.address() as AddressInfo).port)));
const close = (s: Server | ReturnType<typeof createServer>) => new Promise<void>((r) => s.close(() => r()));

test("tcp: a listener passes, a closed port fails", async () => {
  const srv = createServer((c) => c.end());
  const port = await listen(srv);
  assert.deepEqual(await tcpCheck(spec(port), new AbortController().signal), {
    ok: true,
    detail: "tcp: connected",
  });
  await close(srv);
  const r = await tcpCheck(spec(port), new AbortController().signal);
  assert.equal(r.ok, false);
  assert.match(r.detail, /ECONNREFUSED/);
});

test("http: path and expected status", async () => {
  const paths: string[] = [];
  const srv = createHttpServer((req, res) => {
    paths.push(req.url ?? "");
    res.writeHead(req.url === "/health" ? 204 : 503).end();
  });
  const port = await listen(srv);
  const s = new AbortController().signal;
  assert.deepEqual(await httpCheck(spec(port, { method: "http", path: "/health" }), s), {
    ok: true,
    detail: "http: status 204",
  });
  assert.deepEqual(await httpCheck(spec(port, { method: "http", path: "/health", expectStatus: 200 }), s), {
    ok: false,
    detail: "http: status 204 (want 200)",
  });
  assert.equal((await httpCheck(spec(port, { method: "http", path: "/" }), s)).ok, false);
  assert.deepEqual(paths, ["/health", "/health", "/"]);
  await close(srv);
});

test("an aborted check ends promptly", async () => {
  // Accepts but never answers HTTP.
  const srv = createServer(() => undefined);
  const port = await listen(srv);
  const ac = new AbortController();
  const p = httpCheck(spec(port, { method: "http" }), ac.signal);
  setTimeout(() => ac.abort(), 50);
  const r = await p;
  assert.equal(r.ok, false);
  assert.match(r.detail, /aborted/);
  srv.close();
});
