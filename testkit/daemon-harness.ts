// Running `nflb run` inside a lab's router namespace and watching LAN connections while links
// fail: shared by the daemon lab tests and bench/failover.ts. Every loop here is bounded.
import { jsonLines } from "../src/lab/processes.ts";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NetnsLab } from "../src/lab/lab.ts";
import type { UplinkLab } from "../src/lab/uplink-lab.ts";
import type { ExecResult } from "../src/system/exec.ts";
import type { TrackedProcess } from "../src/lab/processes.ts";
import type { StatusJson } from "../src/daemon/status.ts";

export const NFLB = fileURLToPath(new URL("../bin/nflb", import.meta.url));
export const API_PORT = 9110;

export interface LabConfigOptions {
  interval?: string;
  method?: "random" | "round-robin";
  weights?: number[];
  /** Extra YAML appended at the end (rules, api…). */
  extra?: string;
  /** Extra keys inside every uplink's probe block, e.g. "down_after: 2". */
  probe?: string;
}

/** One uplink's block under `uplinks:`; `probe` is what goes inside its braces. */
export interface UplinkYaml {
  interface: string;
  gateway?: string;
  weight?: number;
  probe?: string;
}

function uplinkYaml(name: string, u: UplinkYaml): string[] {
  const lines = [`  ${name}:`, `    interface: ${u.interface}`];
  if (u.gateway !== undefined) lines.push(`    gateway: ${u.gateway}`);
  if (u.weight !== undefined) lines.push(`    weight: ${u.weight}`);
  if (u.probe !== undefined) lines.push(`    probe: { ${u.probe} }`);
  return lines;
}

/** A config of these uplinks (name → block), then `more` lines (balance, rules…). */
export function uplinksConfig(uplinks: Record<string, UplinkYaml>, more: string[]): string {
  const lines = ["version: 1", "uplinks:"];
  for (const [name, u] of Object.entries(uplinks)) lines.push(...uplinkYaml(name, u));
  return [...lines, ...more, ""].join("\n");
}

/** A config for the lab's router: every lab uplink, ICMP probes to the lab's two targets. */
export function labConfig(lab: UplinkLab, o: LabConfigOptions = {}): string {
  const probe = [`targets: [${lab.addr.targets4.join(", ")}]`];
  if (o.interval) probe.push(`interval: ${o.interval}`);
  if (o.probe) probe.push(o.probe);
  const uplinks: Record<string, UplinkYaml> = {};
  for (const u of lab.uplinks)
    uplinks[`isp${u.index}`] = {
      interface: u.wanIf,
      gateway: u.gateway4,
      weight: o.weights?.[u.index - 1] ?? 1,
      probe: probe.join(", "),
    };
  const balance = ["balance:", "  from: [lan0]", `  method: ${o.method ?? "random"}`];
  return uplinksConfig(uplinks, balance) + (o.extra ?? "");
}

export async function writeConfig(file: string, text: string): Promise<void> {
  await writeFile(file, text);
}

export interface RunningDaemon {
  proc: TrackedProcess;
  /** Lines of the daemon's JSON log. */
  logs(): Record<string, unknown>[];
  stop(): Promise<number>;
}

export interface DaemonStart {
  /** More environment for the daemon (e.g. a PATH with fake nft/fping in front, for fault injection). */
  env?: Record<string, string>;
  /** The lab namespace it runs in: the router unless said (a service lab's is "lb"). */
  role?: string;
  /** How long it may take to say it runs (20 s; a config of thousands of objects takes longer). */
  startMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL (5 s). */
  stopMs?: number;
}

/**
 * Start `nflb run` in a lab namespace and wait until it says it runs. Its state file goes next to
 * the config (a temp dir the test removes), not to the host's /run/nflb. `api` null: no --api.
 */
export async function startDaemon(
  lab: NetnsLab,
  configFile: string,
  api: string | null = `0.0.0.0:${API_PORT}`,
  opts: DaemonStart = {},
): Promise<RunningDaemon> {
  // `env` execs nflb in place: the pid stays the daemon's own, for signals.
  const extra = Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const argv = ["env", `NFLB_STATE_DIR=${dirname(configFile)}`, ...extra, NFLB, "run", "-c", configFile];
  if (api !== null) argv.push("--api", api);
  const proc = lab.spawn(opts.role ?? "router", argv);
  try {
    await proc.waitForLine(/"msg":"nflb running"/, opts.startMs ?? 20_000);
  } catch (e) {
    await proc.stop(2000);
    throw e;
  }
  return {
    proc,
    logs: () => jsonLines(proc.stdout()),
    stop: async () => {
      await proc.stop(opts.stopMs ?? 5000);
      return proc.exited;
    },
  };
}

export interface HttpAnswer {
  code: number;
  body: string;
}

/** One HTTP request with curl from a lab namespace (bounded by --max-time). */
export async function http(
  lab: NetnsLab,
  role: string,
  method: "GET" | "POST",
  url: string,
  headers: Record<string, string> = {},
): Promise<HttpAnswer> {
  const argv = ["curl", "-sS", "--max-time", "5", "-X", method, "-w", "\n%{http_code}", url];
  for (const [k, v] of Object.entries(headers)) argv.push("-H", `${k}: ${v}`);
  const r = await lab.exec(role, argv, { timeoutMs: 10_000 });
  const nl = r.stdout.lastIndexOf("\n");
  return { code: Number(r.stdout.slice(nl + 1)) || 0, body: r.stdout.slice(0, nl) };
}

export async function status(lab: NetnsLab): Promise<StatusJson> {
  const r = await http(lab, "router", "GET", `http://127.0.0.1:${API_PORT}/api/v1/status`);
  if (r.code !== 200) throw new Error(`status: HTTP ${r.code} ${r.body}`);
  return JSON.parse(r.body) as StatusJson;
}

/** Poll status until `ok` holds (at most `timeoutMs`); returns the last status. */
export async function waitStatus(
  lab: NetnsLab,
  ok: (s: StatusJson) => boolean,
  timeoutMs: number,
  what: string,
): Promise<StatusJson> {
  const deadline = Date.now() + timeoutMs;
  let last: StatusJson | undefined;
  while (Date.now() < deadline) {
    last = await status(lab).catch(() => undefined);
    if (last && ok(last)) return last;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(last?.uplinks)}`);
}

/**
 * 24 short connections from the LAN, each given `timeoutMs`, all of which must succeed: which
 * uplinks carried them.
 */
export async function lanBatch(lab: UplinkLab, timeoutMs = 1000): Promise<Record<string, number>> {
  const r = await lab.runClient({
    from: "lan",
    dst: lab.addr.server4,
    port: lab.ports.echo,
    count: 24,
    parallel: 8,
    timeoutMs,
    deadlineMs: 10_000,
  });
  assert.equal(r.failed, 0, `failed connections: ${r.errors.join("; ")}`);
  return r.bySeen;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const allUp = (s: StatusJson) => s.uplinks.every((u) => u.state === "up" && u.probed);

// ---- connection poller ----------------------------------------------------------------------

/** One batch of short connections started at `t` (epoch ms). */
export interface Batch {
  t: number;
  ok: number;
  failed: number;
  /** Reply line ("inet SOURCE") → count: which uplink carried each connection. */
  seen: Record<string, number>;
}

// Plain JS run with `node -e` inside a namespace: starts a batch of BATCH parallel TCP connections
// every EVERY ms (at most 8 batches in flight), each bounded by TIMEOUT ms, for DURATION ms, and
// prints one JSON line per finished batch.
const POLLER = `
import { connect } from "node:net";
const [host, port, batch, every, timeout, duration] = process.argv.slice(1).map((x, i) => i ? Number(x) : x);
const start = Date.now();
let inflight = 0;
function once() {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let buf = "";
    const done = (line) => { clearTimeout(timer); s.destroy(); resolve(line); };
    const timer = setTimeout(() => done(null), timeout);
    s.setEncoding("utf8");
    s.on("data", (d) => { buf += d; const nl = buf.indexOf("\\n"); if (nl >= 0) done(buf.slice(0, nl)); });
    s.on("error", () => done(null));
    s.on("close", () => done(null));
  });
}
async function run(t) {
  inflight++;
  const lines = await Promise.all(Array.from({ length: batch }, once));
  inflight--;
  const seen = {};
  for (const l of lines) if (l !== null) seen[l] = (seen[l] ?? 0) + 1;
  const ok = lines.filter((l) => l !== null).length;
  process.stdout.write(JSON.stringify({ t, ok, failed: batch - ok, seen }) + "\\n");
}
const tick = setInterval(() => {
  if (Date.now() - start > duration) { clearInterval(tick); return; }
  if (inflight < 8) void run(Date.now());
}, every);
process.on("SIGTERM", () => { clearInterval(tick); setTimeout(() => process.exit(0), timeout + 50); });
`;

export interface PollerOptions {
  batch?: number;
  everyMs?: number;
  timeoutMs?: number;
  durationMs: number;
}

export interface Poller {
  /** Batches finished so far, in order of their start. */
  batches(): Batch[];
  stop(): Promise<Batch[]>;
}

/** Keep opening short connections from the LAN to the internet server. */
export async function startPoller(lab: UplinkLab, o: PollerOptions): Promise<Poller> {
  const argv = [
    process.execPath,
    "--input-type=module",
    "-e",
    POLLER,
    lab.addr.server4,
    String(lab.ports.echo),
    String(o.batch ?? 8),
    String(o.everyMs ?? 50),
    String(o.timeoutMs ?? 300),
    String(o.durationMs),
  ];
  const proc = lab.spawn("lan", argv);
  const parse = () =>
    jsonLines(proc.stdout())
      .filter((b) => typeof b["t"] === "number")
      .map((b) => b as unknown as Batch)
      .sort((a, b) => a.t - b.t);
  await proc.waitForLine(/^\{/, 10_000);
  return {
    batches: parse,
    stop: async () => {
      await proc.stop(2000);
      return parse();
    },
  };
}

/**
 * When new connections all succeed again after `since`: the start of the first batch from which
 * every later batch succeeded fully. null when the last batch still failed.
 */
export function recoveredAt(batches: Batch[], since: number): number | null {
  const after = batches.filter((b) => b.t >= since);
  let at: number | null = null;
  for (const b of after) {
    if (b.failed > 0) at = null;
    else at ??= b.t;
  }
  return at;
}

/** Batches that failed at all, after `since`. */
export const failures = (batches: Batch[], since: number) =>
  batches.filter((b) => b.t >= since && b.failed > 0);

/** Batches and daemon log lines around `since`, as text: printed when a bound is missed. */
export function timeline(
  batches: Batch[],
  logs: Record<string, unknown>[],
  since: number,
  ms: number,
): string {
  const rows: [number, string][] = [];
  for (const b of batches)
    if (b.t >= since - 100 && b.t <= since + ms)
      rows.push([b.t - since, `batch ok=${b.ok} failed=${b.failed} ${JSON.stringify(b.seen)}`]);
  for (const l of logs) {
    const t = Date.parse(String(l.time));
    if (t >= since - 100 && t <= since + ms)
      rows.push([t - since, `log ${String(l.msg)} (${String(l.reason)})`]);
  }
  return rows
    .sort((a, b) => a[0] - b[0])
    .map(([t, s]) => `${t >= 0 ? "+" : ""}${t} ms ${s}`)
    .join("\n");
}

/** What a daemon fixture waits for once `nflb run` says it runs. */
export interface Ready {
  ok: (s: StatusJson) => boolean;
  timeoutMs: number;
  what: string;
}

export const EVERY_UPLINK_UP: Ready = { ok: allUp, timeoutMs: 15_000, what: "every uplink up" };

export interface DaemonFixtureOptions extends Omit<DaemonStart, "env"> {
  /** `nflb run --api` (0.0.0.0:9110 unless said); null: none. */
  api?: string | null;
  /** Wait for lab.settle() after the build (tests that count every connection from the start). */
  settle?: boolean;
  /**
   * Set-up between the build (with `dir` made) and writing the config: servers, addresses, files.
   * down() undoes it with the lab (every process the lab spawned is stopped by pid).
   */
  prepare?: () => Promise<void>;
  /** More environment for `nflb run`, asked at every start (e.g. a PATH with fakes in front). */
  env?: () => Record<string, string>;
  /**
   * What start() waits for by default (asked of the router's API): every uplink up; null for
   * nothing (the test waits itself; a service lab, which has no router).
   */
  ready?: Ready | null;
  /** false: up() writes the config and leaves starting `nflb run` to the test (start()). */
  start?: boolean;
}

/** A lab a fixture can build: an uplink lab, a service lab. */
export type BuildableLab = NetnsLab & { build(): Promise<unknown> };

/**
 * The usual set-up of a daemon lab test: build the lab, write `config()` to a temporary file, run
 * `nflb run` on the router (or `role`) and wait until every uplink is up (or `ready`); `down()`
 * undoes all of it, also after a set-up that failed half-way. stop(), write() and start()
 * restart the daemon inside a test.
 */
export class DaemonFixture {
  daemon: RunningDaemon | undefined;
  /** The config file (`nflb.yaml` in `dir`); the daemon's state file goes next to it. */
  file = "";
  /** The fixture's temporary directory, removed by down(). */
  dir = "";

  constructor(
    readonly lab: BuildableLab,
    private readonly config: () => string,
    private readonly opts: DaemonFixtureOptions = {},
  ) {}

  async up(): Promise<void> {
    await this.lab.build();
    if (this.opts.settle) await this.lab.settle();
    this.dir = await mkdtemp(join(tmpdir(), "nflb-lab-"));
    this.file = join(this.dir, "nflb.yaml");
    await this.opts.prepare?.();
    await this.write();
    if (this.opts.start !== false) await this.start();
  }

  /** Write the config file: `config()` unless given another text. */
  async write(text = this.config()): Promise<void> {
    await writeFile(this.file, text);
  }

  /**
   * Run `nflb run` with the config file as it is now (a daemon still running is stopped first)
   * and wait for `ready`.
   */
  async start(ready: Ready | null = this.opts.ready === undefined ? EVERY_UPLINK_UP : this.opts.ready) {
    await this.stop();
    const { role, startMs, stopMs, api } = this.opts;
    const env = this.opts.env?.();
    this.daemon = await startDaemon(this.lab, this.file, api, { role, startMs, stopMs, env });
    if (ready) await waitStatus(this.lab, ready.ok, ready.timeoutMs, ready.what);
    return this.daemon;
  }

  /** `nflb ARGS` in the daemon's namespace, with its state directory. */
  cli(args: string[], timeoutMs = 60_000): Promise<ExecResult> {
    const env = { ...process.env, NFLB_STATE_DIR: this.dir };
    return this.lab.exec(this.opts.role ?? "router", [NFLB, ...args], { timeoutMs, env });
  }

  /** Stop the daemon (SIGTERM, then SIGKILL); its exit code, or undefined when none ran. */
  async stop(): Promise<number | undefined> {
    const d = this.daemon;
    this.daemon = undefined;
    return d?.stop();
  }

  async down(): Promise<void> {
    await this.stop();
    await this.lab.destroy();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
