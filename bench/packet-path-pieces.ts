// Which piece of nflb's ruleset and routing costs what on the packet path: the bare `numgen` map
// design, nflb as applied, and variants in between (bench/lib/packet-path-variants.ts: the bare
// design plus one of nflb's pieces, or nflb minus one), each on its own router namespace side by
// side, measured in interleaved rounds of new TCP connections (as bench/uplinks-packet-path.ts).
//
//   node --import tsx bench/packet-path-pieces.ts [--uplinks 32] [--variants ng,nflb,…]
//                                                  [--count 40000] [--rounds 40] [--pin]
//                                                  [--perf HZ [--symbols]]
//
// Measures per variant: the connection rate, as the median of per-round ratios to the bare design
// with its 95 % interval (drifts with the machine's load); with --perf, CPU per connection by
// kernel group and in all, from the bench's own samples only (bench/lib/perf-cpu.ts), and the bare
// design's over the variant's, per round and over all rounds (the figure to judge by on a shared
// machine); and the machine's softirq and system CPU ticks per 1,000 connections (/proc/stat).
import { join } from "node:path";
import { parseArgs } from "node:util";
import { withBenchNet, type BenchNet } from "./lib/bench-net.ts";
import type { ConnSample } from "./lib/conn-client.ts";
import {
  fmtRatio,
  intOption as int,
  pairedRatios,
  ratioSummary,
  runConnClient,
  startConnServer,
  type ClientOptions,
} from "./lib/packet-path-run.ts";
import { VARIANTS, type Variant } from "./lib/packet-path-variants.ts";
import { CpuProfile, GROUPS, groupOf, type Group } from "./lib/perf-cpu.ts";
import { dateLine, loadLine, machineLine, report, requireRoot } from "./lib/report.ts";
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

/** The client's and the server's pids: their samples count in the CPU profile. */
const PIDS = new Set<number>();

async function runClient(net: BenchNet, routers: readonly BenchRouter[], count: number, rounds: number) {
  const res = await runConnClient(net, routers, count, rounds, CLIENT);
  PIDS.add(res.pid);
  return res.samples;
}

const { say, print } = report();

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
  PIDS.add(await startConnServer(net, values.pin ? "1" : undefined));

  const warm = await runClient(net, topo.routers, 400, 1);
  for (const [i, v] of CHOSEN.entries()) {
    const s = warm.find((x) => x.target === i);
    if (!s || s.failed + s.notStarted > 0) throw new Error(`${v.name}: warm-up failed: ${JSON.stringify(s)}`);
  }

  const profile = PERF_HZ ? new CpuProfile(PERF_HZ, join(work, "perf.data")) : undefined;
  profile?.start();
  let samples: ConnSample[];
  try {
    samples = await runClient(net, topo.routers, PER_MEASUREMENT, ROUNDS);
  } finally {
    await profile?.stop();
  }
  if (profile) {
    for (const pid of PIDS) profile.ours.add(pid);
    await profile.read(samples);
  }
  const rows = CHOSEN.map((v, i) => {
    const ss = samples.filter((s) => s.target === i);
    const rate = summarize(ss.map((s) => s.perSecond));
    const ratio = ratioSummary(pairedRatios(samples, i, 0));
    const ok = ss.reduce((a, s) => a + s.ok, 0);
    const failed = ss.reduce((a, s) => a + s.failed + s.notStarted, 0);
    const per1k = (k: "softirq" | "system" | "busy") =>
      ((1000 * ss.reduce((a, s) => a + s.cpu[k], 0)) / Math.max(1, ok)).toFixed(2);
    const us = (g: Group) => (profile ? profile.usPerConn(i, g, ok).toFixed(2) : "–");
    return [
      `${v.name}: ${v.label}`,
      ...GROUPS.map(us),
      rate.median.toFixed(0),
      i === 0 ? "1" : fmtRatio(ratio),
      ...(profile
        ? [
            i === 0 ? "1" : fmtRatio(ratioSummary(profile.roundRatios(samples, i, 0, ROUNDS))),
            i === 0 ? "1" : profile.totalRatio(samples, i, 0, ROUNDS),
            i === 0 ? "1" : profile.kernelRatio(samples, i, 0, ROUNDS),
          ]
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
              "the same, user space taken as equal [95 % bootstrap CI]",
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
      const all = [...(profile?.symbols.get(i) ?? new Map<string, number>())].sort((a, b) => b[1] - a[1]);
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
print();
