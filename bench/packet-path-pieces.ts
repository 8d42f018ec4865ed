// Which piece of nflb's ruleset and routing costs what on the packet path: the bare `numgen` map
// design, nflb as applied, and variants in between (bench/lib/packet-path-variants.ts: the bare
// design plus one of nflb's pieces, or nflb minus one), each on its own router namespace side by
// side, measured in interleaved rounds of new TCP connections (as bench/uplinks-packet-path.ts).
//
//   node --import tsx bench/packet-path-pieces.ts [--uplinks 32] [--variants ng,nflb,…]
//                                                  [--count 40000] [--rounds 40] [--pin]
//                                                  [--perf HZ [--symbols]]
//
// Two measures per variant: the connection rate, as the median of per-round ratios to the bare
// design (drifts with the machine's load), and the machine's softirq and system CPU ticks per
// 1,000 connections summed over all rounds (/proc/stat; forwarding, nft and policy routing run in
// softirq, so this moves with the router's work per connection, much less with other load).
import { spawn } from "node:child_process";
import { join } from "node:path";
import { exec } from "../src/system/exec.ts";
import { parseArgs } from "node:util";
import { withBenchNet, type BenchNet } from "./lib/bench-net.ts";
import type { ConnSample } from "./lib/conn-client.ts";
import {
  fmtRatio,
  intOption as int,
  pairedRatios,
  ratioOfTotals,
  ratioSummary,
  runConnClient,
  startConnServer,
  type ClientOptions,
} from "./lib/packet-path-run.ts";
import { VARIANTS, type Variant } from "./lib/packet-path-variants.ts";
import { dateLine, loadLine, machineLine, requireRoot } from "./lib/report.ts";
import type { InstallContext } from "./lib/router-configs.ts";
import { markdownTable, summarize } from "./lib/stats.ts";
import { buildUplinkTopology, type BenchRouter } from "./lib/uplink-topology.ts";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "40000" },
    rounds: { type: "string", default: "40" },
    uplinks: { type: "string", default: "32" },
    variants: { type: "string", default: VARIANTS.map((v) => v.name).join(",") },
    threads: { type: "string", default: "2" },
    parallel: { type: "string", default: "32" },
    perf: { type: "string", default: "0" },
    symbols: { type: "boolean", default: false },
    pin: { type: "boolean", default: false },
  },
  strict: true,
});
const COUNT = int(values.count, "count", 100, 400_000);
const ROUNDS = int(values.rounds, "rounds", 1, 400);
const N = int(values.uplinks, "uplinks", 1, 32);
const THREADS = int(values.threads, "threads", 1, 16);
const PARALLEL = int(values.parallel, "parallel", 1, 1024);
/** Sampling rate of `perf record -a -e cpu-clock` during the measured rounds (0: no profile). */
const PERF_HZ = int(values.perf, "perf", 0, 10_000);
const PER_MEASUREMENT = Math.ceil(COUNT / ROUNDS);
const CHOSEN: Variant[] = (values.variants ?? "").split(",").map((name) => {
  const v = VARIANTS.find((x) => x.name === name);
  if (!v) throw new Error(`--variants: no variant ${name} (${VARIANTS.map((x) => x.name).join(", ")})`);
  return v;
});
if (CHOSEN[0]?.name !== "ng") CHOSEN.unshift(VARIANTS[0] as Variant);

requireRoot("bench/packet-path-pieces.ts");

const CLIENT: ClientOptions = { threads: THREADS, parallel: PARALLEL, cpus: values.pin ? "0" : undefined };

async function runClient(net: BenchNet, routers: readonly BenchRouter[], count: number, rounds: number) {
  const res = await runConnClient(net, routers, count, rounds, CLIENT);
  OURS.add(res.pid);
  return res.samples;
}

type Group = "nft" | "rules" | "fib" | "ct" | "nat" | "kernel" | "all";
const GROUPS: Group[] = ["nft", "rules", "fib", "ct", "nat", "kernel", "all"];

/** The idle loop's own functions: the idle task's samples there are no work (its softirqs are). */
const IDLE = /idle|safe_halt|mwait|poll_idle|hlt/;

function groupOf(sym: string): Group | undefined {
  if (/^(nft_|__nft|nf_tables)/.test(sym)) return "nft";
  if (/^(fib_rule|fib4_rule|__fib_rule)/.test(sym)) return "rules";
  if (
    /^(fib_|__fib|ip_route|ip_mkroute|rt_|inet_addr_type|fib4_|__fib_validate|ip_rcv_finish_core)/.test(sym)
  )
    return "fib";
  if (/^(nf_nat|__nf_nat|nf_masq|inet_select_addr)/.test(sym)) return "nat";
  if (
    /^(nf_conntrack|__nf_conntrack|nf_ct_|ipv4_conntrack|nf_confirm|__nf_ct|tcp_in_window|nf_tcp)/.test(sym)
  )
    return "ct";
  return undefined;
}

/**
 * The processes whose kernel samples count: the client and the server (the router's forwarding
 * runs in softirq on their system calls), the idle task (softirq on an interrupt's exit) and
 * ksoftirqd (added by name). Other work on the shared machine is left out.
 */
const OURS = new Set<number>([0]);

/** Samples per kernel symbol of the groups, per target (for --symbols). */
const SYMBOLS = new Map<number, Map<string, number>>();

type Profile = Partial<Record<Group, number>>;

/**
 * Samples per group inside each measurement's window, per target and round (key `target:round`).
 * `all` is every sample of ours, user space included: the CPU a connection costs the machine.
 */
async function kernelProfile(file: string, samples: readonly ConnSample[]): Promise<Map<string, Profile>> {
  const res = await exec(["perf", "script", "-i", file, "--ns", "-F", "comm,pid,time,ip,sym"], {
    timeoutMs: 600_000,
  });
  const windows = samples
    .map((s) => ({ t: s.target, round: s.round, a: BigInt(s.monoStart), b: BigInt(s.monoEnd) }))
    .sort((x, y) => (x.a < y.a ? -1 : 1));
  const out = new Map<string, Profile>();
  for (const line of res.stdout.split("\n")) {
    const m = /^\s*(.*?)\s+(\d+)\s+(\d+)\.(\d{9}):\s+([0-9a-f]+)\s+(\S+)/.exec(line);
    if (!m) continue;
    if (!OURS.has(Number(m[2])) && !(m[1] as string).startsWith("ksoftirqd")) continue;
    m.splice(1, 2);
    const t = BigInt(m[1] as string) * 1_000_000_000n + BigInt(m[2] as string);
    let lo = 0;
    let hi = windows.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((windows[mid] as (typeof windows)[number]).a <= t) lo = mid;
      else hi = mid - 1;
    }
    const w = windows[lo];
    if (!w || t < w.a || t >= w.b) continue;
    const kernel = (m[3] as string).startsWith("ffff");
    if (kernel && IDLE.test(m[4] as string)) continue;
    const g = groupOf(m[4] as string);
    const key = `${w.t}:${w.round}`;
    const acc = out.get(key) ?? {};
    acc.all = (acc.all ?? 0) + 1;
    if (kernel) acc.kernel = (acc.kernel ?? 0) + 1;
    if (kernel && g) {
      acc[g] = (acc[g] ?? 0) + 1;
      const bySym = SYMBOLS.get(w.t) ?? new Map<string, number>();
      bySym.set(m[4] as string, (bySym.get(m[4] as string) ?? 0) + 1);
      SYMBOLS.set(w.t, bySym);
    }
    out.set(key, acc);
  }
  return out;
}

/** One target's samples over all its rounds. */
function sumProfiles(profile: Map<string, Profile>, target: number): Profile {
  const acc: Profile = {};
  for (const [key, p] of profile) {
    if (!key.startsWith(`${target}:`)) continue;
    for (const g of GROUPS) acc[g] = (acc[g] ?? 0) + (p[g] ?? 0);
  }
  return acc;
}

const out: string[] = [];
const say = (s = "") => {
  out.push(s);
  process.stderr.write(s + "\n");
};

await withBenchNet(async (net) => {
  const work = await net.tempDir();
  const env = { ...process.env, NFLB_STATE_DIR: join(work, "state") };
  const started = performance.now();
  const startLoad = loadLine();
  const topo = await buildUplinkTopology(net, {
    routers: CHOSEN.map((v) => ({ role: v.name.replace(/[^a-z0-9]/g, "").slice(0, 10), uplinks: N })),
    client: true,
  });
  const ctx: InstallContext = { net, dir: work, env };
  for (const [i, v] of CHOSEN.entries()) {
    const r = topo.routers[i] as BenchRouter;
    await v.install(ctx, r, r.uplinks);
  }
  OURS.add(await startConnServer(net, values.pin ? "1" : undefined));

  const warm = await runClient(net, topo.routers, 400, 1);
  for (const [i, v] of CHOSEN.entries()) {
    const s = warm.find((x) => x.target === i);
    if (!s || s.failed + s.notStarted > 0) throw new Error(`${v.name}: warm-up failed: ${JSON.stringify(s)}`);
  }

  const perfFile = join(work, "perf.data");
  const perf = PERF_HZ
    ? spawn(
        "perf",
        [
          "record",
          "-q",
          "-a",
          "-e",
          "cpu-clock",
          "-F",
          String(PERF_HZ),
          "-k",
          "CLOCK_MONOTONIC",
          "-o",
          perfFile,
        ],
        { stdio: "ignore" },
      )
    : undefined;
  const perfDone = perf ? new Promise((r) => perf.once("exit", r)) : undefined;
  let samples: ConnSample[];
  try {
    samples = await runClient(net, topo.routers, PER_MEASUREMENT, ROUNDS);
  } finally {
    if (perf?.pid) process.kill(perf.pid, "SIGINT");
    await perfDone;
  }
  const profile = PERF_HZ ? await kernelProfile(perfFile, samples) : undefined;
  /** Per round: the bare design's CPU per connection over variant i's (> 1: i is cheaper). */
  const cpuRatios = (i: number): number[] => {
    if (!profile) return [];
    const perConn = (t: number, round: number) => {
      const s = samples.find((x) => x.target === t && x.round === round);
      return (profile.get(`${t}:${round}`)?.all ?? NaN) / Math.max(1, s?.ok ?? 0);
    };
    return Array.from({ length: ROUNDS }, (_, r) => perConn(0, r) / perConn(i, r));
  };
  /** Σ CPU of the bare design's rounds per connection over variant i's, rounds paired. */
  const cpuTotals = (i: number): string => {
    if (!profile) return "–";
    const cpu = (t: number) => Array.from({ length: ROUNDS }, (_, r) => profile.get(`${t}:${r}`)?.all ?? 0);
    const oks = (t: number) =>
      Array.from({ length: ROUNDS }, (_, r) => samples.find((x) => x.target === t && x.round === r)?.ok ?? 0);
    // (Σ cpu0 / Σ ok0) / (Σ cpuI / Σ okI): with equal connections per round, Σ cpu0 / Σ cpuI.
    const scale =
      oks(i).reduce((a, b) => a + b, 0) /
      Math.max(
        1,
        oks(0).reduce((a, b) => a + b, 0),
      );
    const r = ratioOfTotals(cpu(0), cpu(i));
    const f = (x: number) => (x * scale).toFixed(3);
    return `${f(r.ratio)} [${f(r.lo)}–${f(r.hi)}]`;
  };
  const rows = CHOSEN.map((v, i) => {
    const ss = samples.filter((s) => s.target === i);
    const rate = summarize(ss.map((s) => s.perSecond));
    const ratio = ratioSummary(pairedRatios(samples, i, 0));
    const ok = ss.reduce((a, s) => a + s.ok, 0);
    const failed = ss.reduce((a, s) => a + s.failed + s.notStarted, 0);
    const per1k = (k: "softirq" | "system" | "busy") =>
      ((1000 * ss.reduce((a, s) => a + s.cpu[k], 0)) / Math.max(1, ok)).toFixed(2);
    const prof = profile ? sumProfiles(profile, i) : undefined;
    const us = (g: Group) => (prof ? (((prof[g] ?? 0) * 1e6) / PERF_HZ / Math.max(1, ok)).toFixed(2) : "–");
    return [
      `${v.name}: ${v.label}`,
      ...GROUPS.map(us),
      rate.median.toFixed(0),
      i === 0 ? "1" : fmtRatio(ratio),
      ...(profile
        ? [i === 0 ? "1" : fmtRatio(ratioSummary(cpuRatios(i))), i === 0 ? "1" : cpuTotals(i)]
        : []),
      per1k("softirq"),
      per1k("system"),
      per1k("busy"),
      `${ok} / ${failed}`,
    ];
  });
  say(`### Packet-path pieces, ${N} uplinks`);
  say();
  say(`${dateLine()}; ${await machineLine()}; ${startLoad} at start.`);
  say();
  say(
    `${ROUNDS} rounds × ${PER_MEASUREMENT.toLocaleString("en")} connections per variant, interleaved; ` +
      `client ${THREADS} threads × ${PARALLEL} in flight${values.pin ? " (client on CPU 0, server on CPU 1)" : ""}. CPU: clock ticks (1/100 s) of the whole machine per ` +
      "1,000 connections, summed over the rounds." +
      (PERF_HZ
        ? ` µs/conn: CPU time per connection in kernel functions by group, from \`perf record -a -e cpu-clock -F ${PERF_HZ}\` ` +
          "samples of the client, the server, ksoftirqd and the idle task inside each measurement's time window (nft: nf_tables; rules: fib rules; fib: FIB lookups and " +
          "route input; ct: conntrack; nat: NAT; kernel: every kernel sample; all: every sample, user space " +
          "included, the idle loop left out). The CPU ratio is the rate ratio the variants would show if the cores were " +
          "the limit and all theirs; other load moves it far less than it moves the rate."
        : ""),
  );
  say();
  say(
    markdownTable(
      [
        "variant",
        ...GROUPS.map((g) => `µs/conn ${g}`),
        "conn/s median",
        "rate / bare, per round: median [95 % CI] (IQR)",
        ...(profile
          ? [
              "bare's CPU / this CPU per conn, per round: median [95 % CI] (IQR)",
              "the same over all rounds [95 % bootstrap CI]",
            ]
          : []),
        "softirq",
        "system",
        "busy",
        "ok / failed",
      ],
      rows,
    ),
  );
  say();
  if (PERF_HZ && values.symbols) {
    say("Symbols of the nft, rules and fib groups, µs per connection (top 8 of each group per variant):");
    say();
    for (const [i, v] of CHOSEN.entries()) {
      const ok = samples.filter((s) => s.target === i).reduce((a, s) => a + s.ok, 0);
      const all = [...(SYMBOLS.get(i) ?? new Map<string, number>())].sort((a, b) => b[1] - a[1]);
      const us = (n: number) => ((n * 1e6) / PERF_HZ / Math.max(1, ok)).toFixed(2);
      for (const g of ["nft", "rules", "fib"] as const) {
        const top = all.filter(([sym]) => groupOf(sym) === g).slice(0, 8);
        say(`- ${v.name} ${g}: ${top.map(([sym, n]) => `${sym} ${us(n)}`).join(", ")}`);
      }
    }
    say();
  }
  say(`${loadLine()} at end; whole run ${((performance.now() - started) / 1000).toFixed(0)} s.`);
});
process.stdout.write(out.join("\n") + "\n");
