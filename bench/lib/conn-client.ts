// Bench client: opens short TCP connections (connect, read the server's byte, close) as fast as
// it can, from THREADS worker threads with PARALLEL connections in flight each, to several
// targets in turn: ROUNDS rounds of COUNT connections per target, odd rounds in reverse order,
// so that drift on a shared machine hits every target alike.
//
//   conn-client.ts --target HOST:PORT [--target …] [--count N] [--rounds R] [--threads T]
//                  [--parallel K] [--timeout-ms T] [--deadline-ms D]
//
// A measurement starts when the threads are told to go (Node and tsx start-up excluded) and
// stops when its last connection has finished. Bounded: at most 5,000,000 connections in all,
// none started after --deadline-ms. Prints one JSON line: {samples: ConnSample[]}.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { boundedInt, parseEndpoint } from "../../src/lab/tools/endpoint.ts";

export interface ConnSample {
  round: number;
  /** Index into the --target list. */
  target: number;
  ok: number;
  failed: number;
  notStarted: number;
  errors: Record<string, number>;
  ms: number;
  perSecond: number;
  /**
   * The whole machine's CPU time during the measurement, from /proc/stat (clock ticks, all cores):
   * softirq (where forwarding, nft and policy routing run), system, and busy (everything but idle).
   * Not the client's alone: compare configurations by these per connection, summed over rounds.
   */
  cpu: CpuTicks;
  /** CLOCK_MONOTONIC at the start and end of the measurement, in ns (to match `perf record -k CLOCK_MONOTONIC`). */
  monoStart: string;
  monoEnd: string;
}

export interface CpuTicks {
  softirq: number;
  system: number;
  busy: number;
}

/** The "cpu" line of /proc/stat: user nice system idle iowait irq softirq steal … */
export function readCpuTicks(): CpuTicks {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const at = (i: number) => f[i] ?? 0;
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { softirq: at(6), system: at(2), busy: total - at(3) - at(4) };
}

const MAX_TOTAL = 5_000_000;

const { values } = parseArgs({
  options: {
    target: { type: "string", multiple: true, default: [] },
    count: { type: "string" },
    rounds: { type: "string" },
    threads: { type: "string" },
    parallel: { type: "string" },
    "timeout-ms": { type: "string" },
    "deadline-ms": { type: "string" },
  },
  strict: true,
});
const targets = (values.target ?? []).map(parseEndpoint);
if (targets.length === 0) throw new Error("--target HOST:PORT is required");
const count = boundedInt(values.count, "count", 1000, 1, 200_000);
const rounds = boundedInt(values.rounds, "rounds", 1, 1, 400);
const threads = boundedInt(values.threads, "threads", 2, 1, 16);
const parallel = boundedInt(values.parallel, "parallel", 32, 1, 1024);
const timeoutMs = boundedInt(values["timeout-ms"], "timeout-ms", 3000, 1, 60_000);
const deadlineMs = boundedInt(values["deadline-ms"], "deadline-ms", 600_000, 1, 3_600_000);
if (count * rounds * targets.length > MAX_TOTAL)
  throw new Error(`count × rounds × targets must stay within ${MAX_TOTAL}`);

// Plain JavaScript, evaluated in each worker thread (no loader needed there).
const WORKER = `
const { parentPort } = require("node:worker_threads");
const { connect } = require("node:net");
function once(job, stats) {
  return new Promise((resolve) => {
    const sock = connect({ host: job.host, port: job.port });
    let failed = null;
    sock.setTimeout(job.timeoutMs, () => { failed = "timeout"; sock.destroy(); });
    sock.on("error", (e) => { failed = e.code || e.message; });
    sock.on("data", () => undefined);
    sock.on("end", () => sock.end());
    sock.on("close", () => {
      if (failed) { stats.failed++; stats.errors[failed] = (stats.errors[failed] || 0) + 1; }
      else stats.ok++;
      resolve();
    });
  });
}
parentPort.on("message", async (job) => {
  const stats = { ok: 0, failed: 0, notStarted: 0, errors: {} };
  let left = job.count;
  const loop = async () => {
    while (left > 0) {
      left--;
      if (Date.now() > job.deadline) { stats.notStarted++; continue; }
      await once(job, stats);
    }
  };
  await Promise.all(Array.from({ length: Math.min(job.parallel, job.count) }, loop));
  parentPort.postMessage(stats);
});
parentPort.postMessage("ready");
`;

type Stats = Pick<ConnSample, "ok" | "failed" | "notStarted" | "errors">;

const workers = Array.from({ length: threads }, () => new Worker(WORKER, { eval: true }));
await Promise.all(workers.map((w) => new Promise((r) => w.once("message", r))));
const deadline = Date.now() + deadlineMs;

function runOn(w: Worker, job: object): Promise<Stats> {
  return new Promise((resolve, reject) => {
    w.once("message", resolve);
    w.once("error", reject);
    w.postMessage(job);
  });
}

async function measure(round: number, target: number): Promise<ConnSample> {
  const ep = targets[target];
  if (!ep) throw new Error(`no target ${target}`);
  const c0 = readCpuTicks();
  const m0 = process.hrtime.bigint();
  const t0 = performance.now();
  const results = await Promise.all(
    workers.map((w, t) =>
      runOn(w, {
        host: ep.address,
        port: ep.port,
        count: Math.floor(count / threads) + (t < count % threads ? 1 : 0),
        parallel,
        timeoutMs,
        deadline,
      }),
    ),
  );
  const ms = performance.now() - t0;
  const m1 = process.hrtime.bigint();
  const c1 = readCpuTicks();
  const cpu = { softirq: c1.softirq - c0.softirq, system: c1.system - c0.system, busy: c1.busy - c0.busy };
  const s: ConnSample = {
    round,
    target,
    ok: 0,
    failed: 0,
    notStarted: 0,
    errors: {},
    ms,
    perSecond: 0,
    cpu,
    monoStart: String(m0),
    monoEnd: String(m1),
  };
  for (const r of results) {
    s.ok += r.ok;
    s.failed += r.failed;
    s.notStarted += r.notStarted;
    for (const [k, v] of Object.entries(r.errors)) s.errors[k] = (s.errors[k] ?? 0) + v;
  }
  s.perSecond = s.ok / (ms / 1000);
  return s;
}

const samples: ConnSample[] = [];
const order = targets.map((_, i) => i);
for (let round = 0; round < rounds; round++) {
  for (const target of round % 2 ? [...order].reverse() : order) {
    const s = await measure(round, target);
    samples.push(s);
    process.stderr.write(`round ${round + 1}/${rounds} target ${target}: ${s.perSecond.toFixed(0)} conn/s\n`);
  }
}
await Promise.all(workers.map((w) => w.terminate()));
process.stdout.write(JSON.stringify({ samples, pid: process.pid }) + "\n");
