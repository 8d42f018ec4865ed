// The CLI as users run it (src/cli/main.ts in a child process) against a fake daemon on a
// loopback port: argument parsing, what each verb sends, exit codes, --json output.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { StatusJson, UplinkStatus } from "../../src/daemon/status.ts";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const PKG = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function nflb(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", MAIN, ...args],
      { timeout: 30_000, env: { ...process.env, NFLB_API_TOKEN: "", ...env } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const uplink = (name: string, state: UplinkStatus["state"]): UplinkStatus => ({
  name,
  interface: `wan-${name}`,
  state,
  reason: "",
  since: null,
  weight: 1,
  effective_weight: 1,
  share: 0.5,
  rtt_ms: 1,
  jitter_ms: 0,
  loss: 0,
  connections: 3,
  probed: true,
});

let status: StatusJson;
function resetStatus(): void {
  status = {
    uplinks: [uplink("isp1", "up"), uplink("isp2", "up")],
    services: [
      {
        name: "web",
        listen: "203.0.113.10:80",
        protocol: "tcp",
        backends: [
          {
            address: "10.1.1.1:80",
            state: "up",
            weight: 1,
            connections: 2,
            connections_total: 9,
            bytes_to_backend: null,
            bytes_from_backend: null,
            reason: "",
            since: null,
          },
        ],
      },
    ],
    cluster: null,
    applied_at: null,
    config_version: "abc123abc123",
    config_file: "/etc/nflb/nflb.yaml",
    started_at: "2026-01-01T00:00:00.000Z",
    last_reload_error: null,
    keeping_last_data_plane: false,
  };
}

/** What the fake daemon received, and how it answers a POST. */
const seen: { method: string; url: string; auth: string | undefined; body: string }[] = [];
let answerPost: (url: string, body: string) => [number, unknown] = () => [200, {}];
let onGet: () => void = () => undefined;
let server: Server;
let api = "";
let dir = "";

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "nflb-cli-"));
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", auth: req.headers.authorization, body });
      if (req.method === "GET") onGet();
      const [code, json] = req.method === "GET" ? [200, status] : answerPost(req.url ?? "", body);
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(json));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  api = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

test("--version prints package.json's version; --help documents the exit codes", async () => {
  const v = await nflb(["--version"]);
  assert.deepEqual([v.code, v.stdout.trim()], [0, PKG.version]);
  const h = await nflb(["--help"]);
  assert.equal(h.code, 0);
  for (const verb of ["check", "reload", "uplink", "backend", "status"])
    assert.match(h.stdout, new RegExp(`^  ${verb}`, "m"));
  assert.match(h.stdout, /Exit status: 0 ok; 2 an invalid config/);
  const s = await nflb(["status", "--help"]);
  assert.match(s.stdout, /Exit status: 0 every uplink and backend up; 1 degraded/);
  assert.match((await nflb(["backend", "drain", "--help"])).stdout, /--wait/);
});

test("status: 0 all up, 1 degraded, 2 all down; the JSON as the daemon sent it", async () => {
  resetStatus();
  const up = await nflb(["status", "--api", api, "--json"]);
  assert.equal(up.code, 0, up.stderr);
  assert.deepEqual(JSON.parse(up.stdout), status);
  status.uplinks[1] = uplink("isp2", "disabled");
  const degraded = await nflb(["status", "--api", api]);
  assert.equal(degraded.code, 1);
  assert.match(degraded.stdout, /^isp2 +wan-isp2 +disabled/m);
  status.uplinks[0] = uplink("isp1", "down");
  assert.equal((await nflb(["status", "--api", api])).code, 2);
  resetStatus();
  const b = status.services[0]?.backends[0];
  if (b) b.state = "down";
  assert.equal((await nflb(["status", "--api", api])).code, 1, "a backend down: degraded");
});

test("status with no daemon: exit 2, and with --json an error document", async () => {
  const none = await nflb(["status", "--api", "127.0.0.1:1", "--json", "-c", "/nonexistent"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no daemon answers at http:\/\/127\.0\.0\.1:1\/api\/v1\/status/);
  const j = JSON.parse(none.stdout) as { ok: boolean; exit: number; error: string };
  assert.deepEqual([j.ok, j.exit], [false, 2]);
});

test("config errors exit 2 with the path and line (and the issues in --json); usage errors 1", async () => {
  const file = join(dir, "bad.yaml");
  await writeFile(file, "version: 1\nuplinks:\n  isp1: { interface: wan1, weight: heavy }\n");
  const r = await nflb(["check", "--offline", "-c", file]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /uplinks\.isp1\.weight \(line 3, column \d+\)/);
  const j = await nflb(["plan", "--offline", "--json", "-c", file]);
  assert.equal(j.code, 2);
  const doc = JSON.parse(j.stdout) as { issues: { path: string[]; line: number }[]; file: string };
  assert.deepEqual(
    [doc.file, doc.issues[0]?.path, doc.issues[0]?.line],
    [file, ["uplinks", "isp1", "weight"], 3],
  );
  assert.equal((await nflb(["check", "--no-such-flag"])).code, 1);
  assert.equal((await nflb(["run", "--node", "Bad Name", "-c", file])).code, 2);
});

test("check and plan --json on a valid config", async () => {
  const file = join(dir, "good.yaml");
  await writeFile(file, "version: 1\nuplinks:\n  isp1: { interface: wan1, gateway: 100.64.1.1 }\n");
  const c = await nflb(["check", "--offline", "--json", "-c", file]);
  assert.equal(c.code, 0, c.stderr);
  assert.deepEqual(JSON.parse(c.stdout), {
    ok: true,
    valid: true,
    file,
    uplinks: 1,
    rules: 0,
    services: 0,
    cluster: null,
    warnings: [],
  });
  const p = await nflb(["plan", "--offline", "--json", "-c", file]);
  const plan = JSON.parse(p.stdout) as { nft: string; routing: string[]; sysctls: { key: string }[] };
  assert.match(plan.nft, /table inet nflb/);
  assert.ok(plan.sysctls.some((s) => s.key === "net.ipv4.ip_forward"));
});

test("uplink and backend verbs POST the contract's routes, with the config's token", async () => {
  resetStatus();
  const file = join(dir, "token.yaml");
  await writeFile(file, `version: 1\napi: { listen: "${api}", token: secret-token-1 }\n`);
  seen.length = 0;
  answerPost = (url) => [
    200,
    url.includes("uplinks")
      ? { uplink: "isp1", state: "disabled", changed: true }
      : { backend: "10.1.1.1:80", state: "maint" },
  ];
  const u = await nflb(["uplink", "disable", "isp1", "-c", file]);
  assert.equal(u.code, 0, u.stderr);
  assert.match(u.stdout, /uplink isp1: disabled/);
  const m = await nflb(["backend", "maint", "web", "10.1.1.1:80", "-c", file, "--json"]);
  assert.equal(m.code, 0, m.stderr);
  assert.deepEqual(JSON.parse(m.stdout), { ok: true, backend: "10.1.1.1:80", state: "maint" });
  await nflb(["backend", "weight", "web", "[2001:db8::1]:80", "7", "-c", file]);
  assert.deepEqual(
    seen.map((s) => [s.method, s.url, s.auth, s.body]),
    [
      ["POST", "/api/v1/uplinks/isp1/disable", "Bearer secret-token-1", ""],
      ["POST", "/api/v1/services/web/backends/10.1.1.1%3A80/maint", "Bearer secret-token-1", ""],
      [
        "POST",
        "/api/v1/services/web/backends/%5B2001%3Adb8%3A%3A1%5D%3A80/weight",
        "Bearer secret-token-1",
        '{"weight":7}',
      ],
    ],
  );
  answerPost = () => [404, { error: "no uplink isp9" }];
  const refused = await nflb(["uplink", "enable", "isp9", "--api", api]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /no uplink isp9 \(HTTP 404\)/);
  assert.equal((await nflb(["backend", "weight", "web", "10.1.1.1:80", "-3", "--api", api])).code, 1);
});

test("backend drain --wait: returns once no connection is left, or fails at the timeout", async () => {
  resetStatus();
  answerPost = () => [200, { service: "web", backend: "10.1.1.1:80", state: "draining", changed: true }];
  const b = status.services[0]?.backends[0];
  assert.ok(b);
  b.connections = 2;
  const stuck = await nflb([
    "backend",
    "drain",
    "web",
    "10.1.1.1",
    "--api",
    api,
    "--wait",
    "--timeout",
    "1200ms",
  ]);
  assert.equal(stuck.code, 1);
  assert.match(stuck.stderr, /not done after 1200ms: 2 connection\(s\) left/);
  let gets = 0;
  onGet = () => {
    if (++gets === 3) b.connections = 0;
  };
  const t0 = Date.now();
  const ok = await nflb([
    "backend",
    "drain",
    "web",
    "10.1.1.1",
    "--api",
    api,
    "--wait",
    "--timeout",
    "20s",
    "--json",
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(Date.now() - t0 < 15_000);
  const doc = JSON.parse(ok.stdout) as {
    ok: boolean;
    waited_ms: number;
    backend_status: { connections: number };
  };
  assert.equal(doc.backend_status.connections, 0);
  assert.equal(gets, 3, "polled until the third status said 0");
  assert.ok(doc.waited_ms >= 800, `waited ${doc.waited_ms} ms`);
  onGet = () => undefined;
});

test("reload: 0 once applied; 2 with the path and line when the config is refused; 1 when the kernel refused it", async () => {
  answerPost = () => [200, { ok: true, config_version: "def456def456", applied: "update" }];
  const ok = await nflb(["reload", "--api", api]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /reloaded: config def456def456 runs \(update\)/);
  answerPost = () => [
    422,
    {
      ok: false,
      kind: "config",
      error: "/etc/nflb/nflb.yaml: invalid config\n  uplinks.isp1.weight (line 6, column 13): bad",
      file: "/etc/nflb/nflb.yaml",
      issues: [{ path: ["uplinks", "isp1", "weight"], message: "bad", line: 6, col: 13 }],
    },
  ];
  const bad = await nflb(["reload", "--api", api, "--json"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /reload refused: .*\n {2}uplinks\.isp1\.weight \(line 6, column 13\)/);
  assert.equal((JSON.parse(bad.stdout) as { issues: unknown[] }).issues.length, 1);
  answerPost = () => [409, { ok: false, kind: "apply", error: "the new config failed to apply: nft" }];
  assert.equal((await nflb(["reload", "--api", api])).code, 1);
  // -c naming another file than the daemon runs: refused before anything is asked of it.
  seen.length = 0;
  const other = join(dir, "other.yaml");
  await writeFile(other, `version: 1\napi: { listen: "${api}" }\n`);
  const wrong = await nflb(["reload", "-c", other]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /runs \/etc\/nflb\/nflb\.yaml, not /);
  assert.deepEqual(
    seen.map((s) => s.method),
    ["GET"],
  );
});
