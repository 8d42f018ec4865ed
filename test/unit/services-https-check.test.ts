// HTTPS checks with SNI, a Host header and an expected body, against a loopback TLS server with a
// throw-away self-signed certificate (openssl).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { BODY_LIMIT, httpCheck, serverName, type BackendCheckSpec } from "../../src/health/backend-probes.ts";
import { backendCheckSpec } from "../../src/health/backend-checker.ts";
import { parseConfig } from "../../src/config/load.ts";
import { parseAddr } from "../../src/net/ip.ts";
import { selfSigned, type SelfSigned } from "../../testkit/self-signed.ts";

const spec = (port: number, o: Partial<BackendCheckSpec> = {}): BackendCheckSpec => ({
  service: "web",
  backend: `127.0.0.1:${port}`,
  address: parseAddr("127.0.0.1") ?? assert.fail(),
  port,
  method: "https",
  path: "/health",
  intervalMs: 1000,
  timeoutMs: 1000,
  rise: 1,
  fall: 1,
  ...o,
});
const listen = (s: Server) =>
  new Promise<number>((r) => s.listen(0, "127.0.0.1", () => r((s.address() as AddressInfo).port)));
const close = (s: Server) =>
  new Promise<void>((r) => {
    s.closeAllConnections();
    s.close(() => r());
  });
const check = (s: BackendCheckSpec) => httpCheck(s, new AbortController().signal);

let cert: SelfSigned;
let srv: Server;
let port = 0;
const seen: { sni: string | false | null; host: string | undefined }[] = [];

before(async () => {
  cert = await selfSigned("good.example");
  // Answers "status: healthy" only to the right name, in the handshake and in the Host header.
  srv = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    const sni = (req.socket as import("node:tls").TLSSocket).servername;
    seen.push({ sni, host: req.headers.host });
    if (req.url === "/big") {
      res.writeHead(200);
      res.end("x".repeat(BODY_LIMIT + 1000) + "healthy");
      return;
    }
    if (req.url === "/stall") {
      res.writeHead(200);
      res.write("partial");
      return;
    }
    const ok = sni === "good.example" && req.headers.host === "good.example";
    res.writeHead(ok ? 200 : 421).end(ok ? "status: healthy\n" : "wrong name\n");
  });
  port = await listen(srv);
});
after(async () => {
  await close(srv);
  await cert.remove();
});

test("https: the right SNI and Host pass, a wrong one fails; the certificate is not verified by default", async () => {
  const good = await check(spec(port, { sni: "good.example", host: "good.example" }));
  assert.deepEqual(good, { ok: true, detail: "https: status 200" });
  assert.deepEqual(seen.at(-1), { sni: "good.example", host: "good.example" });
  const badSni = await check(spec(port, { sni: "bad.example", host: "good.example" }));
  assert.deepEqual(badSni, { ok: false, detail: "https: status 421" });
  const badHost = await check(spec(port, { sni: "good.example", host: "bad.example" }));
  assert.equal(badHost.ok, false);
  // Host alone: its name is the SNI too, as a browser sends it.
  assert.equal((await check(spec(port, { host: "good.example:443" }))).ok, false, "port in the Host header");
  assert.equal((await check(spec(port, { host: "good.example" }))).ok, true);
  assert.equal(seen.at(-1)?.sni, "good.example");
  // No name at all: no SNI (an address is never sent as one), Host is ADDRESS:PORT.
  await check(spec(port));
  assert.deepEqual(seen.at(-1), { sni: false, host: `127.0.0.1:${port}` });
});

test("https: expect_body is a substring of the first 64 KiB", async () => {
  const s = { sni: "good.example", host: "good.example" };
  assert.deepEqual(await check(spec(port, { ...s, expectBody: "healthy" })), {
    ok: true,
    detail: "https: status 200, body matches",
  });
  assert.deepEqual(await check(spec(port, { ...s, expectBody: "status: ready" })), {
    ok: false,
    detail: 'https: status 200, no "status: ready" in the body',
  });
  const big = await check(spec(port, { ...s, path: "/big", expectBody: "healthy" }));
  assert.deepEqual(big, {
    ok: false,
    detail: 'https: status 200, no "healthy" in the first 64 KiB of the body',
  });
  // A wrong status fails before any body is read.
  assert.deepEqual(await check(spec(port, { sni: "bad.example", expectBody: "name" })), {
    ok: false,
    detail: "https: status 421",
  });
});

test("https: a body that never ends is cut by the checker's timeout (its abort signal)", async () => {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), 300);
  const r = await httpCheck(spec(port, { path: "/stall", expectBody: "never" }), ac.signal);
  clearTimeout(t);
  assert.deepEqual(r.ok, false);
});

test("https with ca: the chain and the SNI name are verified", async () => {
  const ok = await check(spec(port, { sni: "good.example", host: "good.example", ca: cert.certFile }));
  assert.equal(ok.ok, true, ok.detail);
  const wrongName = await check(spec(port, { sni: "bad.example", ca: cert.certFile }));
  assert.equal(wrongName.ok, false);
  assert.match(wrongName.detail, /ERR_TLS_CERT_ALTNAME_INVALID/);
  const other = await selfSigned("good.example");
  try {
    const untrusted = await check(spec(port, { sni: "good.example", ca: other.certFile }));
    assert.equal(untrusted.ok, false);
    assert.match(untrusted.detail, /^https: /);
  } finally {
    await other.remove();
  }
  const missing = await check(spec(port, { sni: "good.example", ca: "/nonexistent/ca.pem" }));
  assert.deepEqual(missing, { ok: false, detail: "https: ca /nonexistent/ca.pem: ENOENT" });
});

test("http: expect_body and host work over plain HTTP too", async () => {
  const plain = createHttpServer((req, res) => res.end(`hello ${req.headers.host ?? ""}`));
  const p = await listen(plain);
  try {
    const s = (o: Partial<BackendCheckSpec>) => spec(p, { method: "http", path: "/", ...o });
    assert.equal((await check(s({ host: "www.example.com", expectBody: "hello www.example.com" }))).ok, true);
    assert.equal((await check(s({ expectBody: "hello www.example.com" }))).ok, false);
  } finally {
    await close(plain);
  }
});

test("config: https keys, their checks, and what the checker is given", () => {
  const c = parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:443
    check: { method: https, sni: www.example.com, host: "www.example.com:8443", path: /healthz, expect_body: ok, ca: /etc/nflb/ca.pem }
    backends: [{ address: 198.51.100.11:443 }]
`);
  const svc = c.services?.web ?? assert.fail();
  const s = backendCheckSpec("web", svc, svc.backends[0] ?? assert.fail());
  assert.deepEqual(
    [s.method, s.sni, s.host, s.path, s.expectBody, s.ca],
    ["https", "www.example.com", "www.example.com:8443", "/healthz", "ok", "/etc/nflb/ca.pem"],
  );
  const bad = (check: string, message: RegExp) =>
    assert.throws(
      () =>
        parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:443
    check: ${check}
    backends: [{ address: 198.51.100.11:443 }]
`),
      (e: Error) => message.test(e.message),
      check,
    );
  bad("{ method: http, sni: www.example.com }", /check\.sni.*needs method: https/);
  bad("{ method: tcp, expect_body: ok }", /check\.expect_body.*needs method: http or https/);
  bad("{ method: https, sni: 198.51.100.11 }", /check\.sni.*not an address/);
  bad('{ method: https, host: "a\\r\\nX-Evil: 1" }', /check\.host.*host name or address/);
  bad('{ method: https, path: "/a b" }', /check\.path.*without spaces/);
  bad("{ method: https, ca: etc/ca.pem }", /check\.ca.*absolute file path/);
  assert.equal(serverName({ host: "[2001:db8::1]:443" }), undefined);
  assert.equal(serverName({ host: "198.51.100.11" }), undefined);
  assert.equal(serverName({ host: "www.example.com:8443" }), "www.example.com");
});

test("cluster: a check's ca path is never taken from etcd; the rest of an https check is", async () => {
  const { validateShared } = await import("../../src/cluster/shared-config.ts");
  const running = parseConfig(`version: 1
cluster:
  name: web
  node: a
  vip: 192.0.2.2
  interface: eth0
  etcd: [http://192.0.2.250:2379]
`);
  const facts = { interfaces: new Map([["eth0", { name: "eth0", up: true, addresses: [] }]]) };
  const pushed = (check: string) => `version: 1
cluster: { name: web, vip: 192.0.2.2, buckets: 256, lease: 2s }
services:
  web:
    listen: 192.0.2.2:443
    check: ${check}
    backends: [{ address: 192.0.2.20:443, backup: true }, { address: 192.0.2.21:443 }]
`;
  const ok = validateShared(
    pushed("{ method: https, sni: www.example.com, expect_body: ok }"),
    running,
    "a",
    facts,
  );
  assert.ok(ok.ok, ok.ok ? "" : ok.message);
  const refused = validateShared(pushed("{ method: https, ca: /etc/shadow }"), running, "a", facts);
  assert.deepEqual(refused, {
    ok: false,
    message: "services.web.check.ca: a file path is node-local and never taken from etcd",
  });
});
