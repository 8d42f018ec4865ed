// What IPVS/keepalived and HAProxy users expect of a service, against `nflb run` with real
// connections counted at the backends (each echo server names itself): persistence, backup
// backends, HTTPS checks with SNI, Host header and an expected body. Needs root.
// (maint and runtime weights: test/lab/daemon-backends.test.ts.)
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { StatusJson } from "../../src/daemon/status.ts";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { SERVICE_LAB as L, ServiceLab, backendAddress } from "../../src/lab/service-lab.ts";
import { DaemonFixture } from "../../testkit/daemon-harness.ts";
import { selfSigned, type SelfSigned } from "../../testkit/self-signed.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;
const addr = (i: number) => `${backendAddress(i).v4}:80`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface FixtureOptions {
  backends: number;
  clientSources?: number;
  config: () => string;
  /** More set-up before nflb starts, once every backend runs (health servers). */
  prepare?: () => Promise<void>;
}

/** One service lab (client, balancer, every backend running) with `nflb run` on its balancer (no API). */
class Fixture extends DaemonFixture {
  declare readonly lab: ServiceLab;

  constructor(o: FixtureOptions) {
    const lab = new ServiceLab({ backends: o.backends, clientSources: o.clientSources ?? 0 });
    const prepare = async () => {
      for (let i = 1; i <= o.backends; i++) await lab.startBackend(i);
      await o.prepare?.();
    };
    super(lab, o.config, { role: "lb", api: null, ready: null, prepare });
  }

  /** `nflb ARGS -c FILE` on the balancer. */
  override cli(args: string[], timeoutMs = 60_000) {
    return super.cli([...args, "-c", this.file], timeoutMs);
  }

  async status(): Promise<StatusJson> {
    const r = await this.cli(["status", "--json"]);
    return JSON.parse(r.stdout) as StatusJson;
  }

  async backend(address: string, service?: string) {
    const svc = (await this.status()).services.find((x) => service === undefined || x.name === service);
    const b = svc?.backends.find((x) => x.address === address);
    assert.ok(b, address);
    return b;
  }

  async until(what: string, ok: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(200);
    }
  }

  /** `count` new connections one after another: source address → backend name → connections. */
  async connect(
    count: number,
    sources?: readonly string[],
    port = 80,
  ): Promise<Map<string, Record<string, number>>> {
    const r = await this.lab.runClient({
      from: "client",
      dst: L.vip4,
      port,
      count,
      parallel: 1,
      ...(sources ? { sources } : {}),
      timeoutMs: 1000,
      deadlineMs: 20_000,
    });
    assert.equal(r.failed, 0, r.errors.join("; "));
    const out = new Map<string, Record<string, number>>();
    for (const [line, n] of Object.entries(r.bySeen)) {
      const [name = "", peer = ""] = line.split(" ");
      const m = out.get(peer) ?? {};
      m[name] = (m[name] ?? 0) + n;
      out.set(peer, m);
    }
    return out;
  }

  /** `count` connections from the client: backend name → connections. */
  async spread(count = 12): Promise<Record<string, number>> {
    return (await this.connect(count)).get(L.client4) ?? {};
  }

  /** Write the config again and have the daemon reload it (waits until it is applied). */
  async reload(yaml: string): Promise<void> {
    await this.write(yaml);
    const r = await this.cli(["reload"]);
    assert.equal(r.code, 0, r.stderr);
  }

  /** The one backend every one of `count` connections from the client reached (fails if several). */
  async stuck(count: number, port = 80): Promise<string> {
    const seen = (await this.connect(count, undefined, port)).get(L.client4) ?? {};
    const names = Object.keys(seen);
    assert.equal(names.length, 1, `one backend for every connection: ${JSON.stringify(seen)}`);
    assert.equal(seen[names[0] ?? ""], count);
    return names[0] ?? "";
  }
}

describe(
  "persistence: a client keeps its backend across connections (nflb run)",
  { skip, timeout: 300_000 },
  () => {
    const f = new Fixture({
      backends: 3,
      clientSources: 6,
      config: () => `version: 1
services:
  web:
    listen: ${L.vip4}:80
    scheduler: round-robin
    persistence: 3s
    check: { method: tcp, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }
    backends:
      - { address: ${addr(1)} }
      - { address: ${addr(2)} }
      - { address: ${addr(3)} }
  # Long enough that the CLI calls of a test never outlast it.
  sticky:
    listen: ${L.vip4}:81
    scheduler: round-robin
    persistence: 10m
    check: { method: tcp, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }
    backends:
      - { address: ${addr(1)} }
      - { address: ${addr(2)} }
      - { address: ${addr(3)} }
  web6:
    listen: "[${L.vip6}]:80"
    scheduler: random
    persistence: 1m
    check: { method: tcp, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }
    backends:
      - { address: "[${backendAddress(1).v6}]:80" }
      - { address: "[${backendAddress(2).v6}]:80" }
      - { address: "[${backendAddress(3).v6}]:80" }
`,
    });
    before(() => f.up(), { timeout: 90_000 });
    after(() => f.down(), { timeout: 60_000 });

    test("round-robin: every connection of one client reaches one backend; clients are spread", async () => {
      const first = await f.stuck(12, 81);
      assert.equal(await f.stuck(6, 81), first, "still there a moment later");
      // Six other clients, three connections each, interleaved: each keeps one backend.
      const by = await f.connect(18, f.lab.sources, 81);
      const chosen = new Set<string>();
      for (const src of f.lab.sources) {
        const seen = by.get(src) ?? {};
        assert.deepEqual(Object.values(seen), [3], `${src}: ${JSON.stringify(seen)}`);
        chosen.add(Object.keys(seen)[0] ?? "");
      }
      assert.ok(chosen.size > 1, `the clients are still balanced: ${[...chosen].join(", ")}`);
      // Counted by the kernel at the backends too.
      const total = (await f.status()).services[1]?.backends.reduce(
        (n, b) => n + (b.connections_total ?? 0),
        0,
      );
      assert.ok((total ?? 0) >= 36, `connections_total ${total}`);
    });

    test("after the timeout the client is balanced again", async () => {
      const before = await f.stuck(3);
      // Nobody else connects: each expiry lets the rotation give the next backend.
      await sleep(3500);
      const a = await f.stuck(3);
      await sleep(3500);
      const b = await f.stuck(3);
      assert.notEqual(a, b, `moved after the timeout (was ${before}, then ${a}, then ${b})`);
    });

    test("a drained or dead backend keeps nobody; the client stays on the one it gets instead", async () => {
      const on = await f.stuck(3, 81);
      const i = Number(on.slice(1));
      const d = await f.cli(["backend", "drain", "sticky", addr(i)]);
      assert.equal(d.code, 0, d.stderr);
      const next = await f.stuck(6, 81);
      assert.notEqual(next, on, "not on the drained backend");
      // Back in service: the client stays where it was sent meanwhile (its memory was replaced).
      assert.equal((await f.cli(["backend", "enable", "sticky", addr(i)])).code, 0);
      assert.equal(await f.stuck(6, 81), next);

      const j = Number(next.slice(1));
      await f.lab.stopBackend(j);
      await f.until(
        "the client's backend down",
        async () => (await f.backend(addr(j), "sticky")).state === "down",
        10_000,
      );
      const third = await f.stuck(6, 81);
      assert.notEqual(third, next, "not on the dead backend");
      await f.lab.startBackend(j);
      await f.until("back up", async () => (await f.backend(addr(j), "sticky")).state === "up", 10_000);
      assert.equal(await f.stuck(6, 81), third, "a backend coming back takes nobody's memory");
    });

    test("IPv6, random: every connection of the client reaches one backend, remembered by its /64", async () => {
      const r = await f.lab.runClient({
        from: "client",
        dst: L.vip6,
        port: 80,
        count: 12,
        parallel: 1,
        timeoutMs: 1000,
        deadlineMs: 20_000,
      });
      assert.equal(r.failed, 0, r.errors.join("; "));
      const names = new Set(Object.keys(r.bySeen).map((line) => line.split(" ")[0]));
      assert.equal(names.size, 1, JSON.stringify(r.bySeen));
      const table = await f.lab.run("lb", ["nft", "list", "table", "inet", "nflb"]);
      assert.match(table, /2001:db8:1:: timeout 1m expires [^:]*: fffe:[0-2] /);
    });
  },
);

describe(
  "backup: the sorry server takes connections only while no regular backend is up",
  { skip, timeout: 300_000 },
  () => {
    const f = new Fixture({
      backends: 3,
      config: () => `version: 1
services:
  web:
    listen: ${L.vip4}:80
    scheduler: round-robin
    check: { method: tcp, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }
    backends:
      - { address: ${addr(1)} }
      - { address: ${addr(2)} }
      - { address: ${addr(3)}, backup: true }
`,
    });
    before(() => f.up(), { timeout: 90_000 });
    after(() => f.down(), { timeout: 60_000 });

    test("regulars up: the backup gets nothing; all regulars dead: it gets everything; one back: it gets it all", async () => {
      assert.deepEqual(await f.spread(), { b1: 6, b2: 6 });
      const standby = await f.backend(addr(3));
      assert.deepEqual([standby.state, standby.backup, standby.serving], ["up", true, false]);
      assert.match((await f.cli(["status"])).stdout, /backup \(standby\)/);

      await f.lab.stopBackend(1);
      await f.until("b1 down", async () => (await f.backend(addr(1))).state === "down", 10_000);
      assert.deepEqual(await f.spread(), { b2: 12 }, "one regular left: still no backup");

      await f.lab.stopBackend(2);
      await f.until("b2 down", async () => (await f.backend(addr(2))).state === "down", 10_000);
      assert.deepEqual(await f.spread(), { b3: 12 });
      const s = await f.status();
      assert.equal(s.services[0]?.on_backups, true);
      assert.equal((await f.backend(addr(3))).serving, true);
      const text = (await f.cli(["status"])).stdout;
      assert.match(text, /backup \(serving\)/);
      assert.match(text, /the backups take new connections/);
      assert.ok(((await f.backend(addr(3))).connections_total ?? 0) >= 12, "counted at the backup");

      await f.lab.startBackend(2);
      await f.until("b2 up", async () => (await f.backend(addr(2))).state === "up", 10_000);
      assert.deepEqual(await f.spread(), { b2: 12 }, "new connections go back to the regular backend");
      assert.equal((await f.status()).services[0]?.on_backups, false);
      await f.lab.startBackend(1);
      await f.until("b1 up", async () => (await f.backend(addr(1))).state === "up", 10_000);
      assert.deepEqual(await f.spread(), { b1: 6, b2: 6 });
    });
  },
);

/**
 * An HTTPS health endpoint on a backend's address, port 443: "200 healthy NAME" only when both the
 * TLS server name and the Host header are `name` (or to any name when `name` is "*"), else 421.
 */
const HEALTH_SERVER = `
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
const [address, certFile, keyFile, name, label] = process.argv.slice(1);
const srv = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
  const ok = name === "*" || (req.socket.servername === name && req.headers.host === name);
  res.writeHead(ok ? 200 : 421, { connection: "close" });
  res.end(ok ? "healthy " + label + "\\n" : "wrong name\\n");
});
srv.listen(443, address, () => process.stdout.write("ready\\n"));
process.on("SIGTERM", () => process.exit(0));
`;

describe(
  "https checks: SNI, Host header and expected body decide who takes connections",
  { skip, timeout: 300_000 },
  () => {
    let cert: SelfSigned | undefined;
    const config = (check: string) => `version: 1
services:
  web:
    listen: ${L.vip4}:80
    scheduler: round-robin
    check: { method: https, port: 443, path: /health, interval: 200ms, timeout: 500ms, rise: 2, fall: 2, ${check} }
    backends:
      - { address: ${addr(1)} }
      - { address: ${addr(2)} }
`;
    const states = async () => (await f.status()).services[0]?.backends.map((b) => b.state).join(",");
    const f = new Fixture({
      backends: 2,
      config: () => config("sni: good.example, host: good.example, expect_body: healthy"),
      prepare: async () => {
        cert = await selfSigned("good.example");
        // b1 answers only to good.example; b2 to any name, with another body.
        for (const [i, name] of [
          [1, "good.example"],
          [2, "*"],
        ] as const) {
          const p = f.lab.spawn("srv", [
            process.execPath,
            "--input-type=module",
            "-e",
            HEALTH_SERVER,
            backendAddress(i).v4,
            cert.certFile,
            cert.keyFile,
            name,
            `b${i}`,
          ]);
          await p.waitForLine(/ready/, 10_000);
        }
      },
    });
    before(
      async () => {
        await f.up();
        await f.until("both up", async () => (await states()) === "up,up", 15_000);
      },
      { timeout: 90_000 },
    );
    after(
      async () => {
        await f.down();
        await cert?.remove();
      },
      { timeout: 60_000 },
    );

    test("the right SNI and Host: both up and serving; status shows the check", async () => {
      assert.deepEqual(await f.spread(), { b1: 6, b2: 6 });
      const check = (await f.status()).services[0]?.check;
      assert.deepEqual(
        [check?.method, check?.sni, check?.host, check?.expect_body],
        ["https", "good.example", "good.example", "healthy"],
      );
      assert.match(
        (await f.cli(["status"])).stdout,
        /check: https GET \/health .*sni good\.example, host good\.example, body "healthy"/,
      );
    });

    test("a wrong SNI takes the backend that needs the name down; the right one brings it back", async () => {
      await f.reload(config("sni: bad.example, host: good.example"));
      await f.until("b1 down", async () => (await states()) === "down,up", 15_000);
      assert.match((await f.backend(addr(1))).reason, /421/);
      assert.deepEqual(await f.spread(), { b2: 12 });
      await f.reload(config("sni: good.example, host: good.example"));
      await f.until("b1 up", async () => (await states()) === "up,up", 15_000);
      assert.deepEqual(await f.spread(), { b1: 6, b2: 6 });
    });

    test("expect_body: a body without the text is a failed check", async () => {
      await f.reload(config("sni: good.example, host: good.example, expect_body: healthy b1"));
      await f.until("b2 down", async () => (await states()) === "up,down", 15_000);
      assert.match((await f.backend(addr(2))).reason, /no "healthy b1" in the body/);
      assert.deepEqual(await f.spread(), { b1: 12 });
    });
  },
);
