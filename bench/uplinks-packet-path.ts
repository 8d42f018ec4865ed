// Packet-path cost: new TCP connections per second from a client through a router to a server
// behind N uplinks, comparing in the same run
//   plain forwarding | one-link nft masquerade | nflb (random, masquerade) | the bare numgen map design
//   | one-link masquerade + the bare design's N fwmark rules (no marks) | the seeds' iptables nth recipe
// for N = 2, 8, 32. Every configuration has its own router namespace, installed once, side by side
// between one client and one upstream namespace; one client process then interleaves short
// measurements over all of them (A B C … then … C B A, ROUNDS times), and each figure is also
// given as a ratio to the same round's plain forwarding, which cancels drift on a shared machine.
// Ratios print as the median of the per-round ratios, its 95 % confidence interval and the
// interquartile range: a gap smaller than the interval is not a measured difference.
//
//   node --import tsx bench/uplinks-packet-path.ts [--count 100000] [--rounds 50] [--uplinks 2,8,32]
//       [--configs nflb,numgen,masqrules,iptables] [--threads 2] [--parallel 32] [--pin] [--perf HZ]
//   (npm run bench:uplinks runs both uplink benches)
//
// --count is per configuration, split evenly over the rounds (at most 400). --configs picks the
// per-N configurations (plain and one-link masquerade always run; `ecmp`, a multipath default
// route with no marks or rules, only when asked). --pin runs the client on CPU 0
// and the server on CPU 1 (taskset). --perf HZ adds the ratios from CPU per connection
// (bench/lib/perf-cpu.ts), the figure to judge by on a shared machine. Needs root; everything happens in namespaces named nlXXXX-*,
// removed at the end.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { exec } from "../src/system/exec.ts";
import { withBenchNet } from "./lib/bench-net.ts";
import {
  fmtRatio,
  intOption as int,
  linksUsed,
  pairedRatios,
  ratioSummary,
  runConnClient,
  startConnServer,
  txPackets,
  type ClientOptions,
} from "./lib/packet-path-run.ts";
import { CpuProfile } from "./lib/perf-cpu.ts";
import { dateLine, loadLine, machineLine, report, requireRoot } from "./lib/report.ts";
import {
  CONFIG_LABELS,
  installConfig,
  linksCarrying,
  routerRole,
  type ConfigKind,
  type InstallContext,
  type RouterConfigSpec,
} from "./lib/router-configs.ts";
import { markdownTable, summarize } from "./lib/stats.ts";
import { buildUplinkTopology, type BenchRouter } from "./lib/uplink-topology.ts";

const PER_N: ConfigKind[] = ["nflb", "numgen", "masqrules", "ecmp", "iptables"];
const DEFAULT_CONFIGS: ConfigKind[] = ["nflb", "numgen", "masqrules", "iptables"];

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "100000" },
    rounds: { type: "string", default: "50" },
    uplinks: { type: "string", default: "2,8,32" },
    configs: { type: "string", default: DEFAULT_CONFIGS.join(",") },
    threads: { type: "string", default: "2" },
    parallel: { type: "string", default: "32" },
    pin: { type: "boolean", default: false },
    perf: { type: "string", default: "0" },
  },
  strict: true,
});
const COUNT = int(values.count, "count", 100, 400_000);
const ROUNDS = int(values.rounds, "rounds", 1, 400);
const THREADS = int(values.threads, "threads", 1, 16);
const PARALLEL = int(values.parallel, "parallel", 1, 1024);
const NS = (values.uplinks ?? "").split(",").map((s) => int(s, "uplinks", 1, 32));
const KINDS = (values.configs ?? "").split(",").map((k) => {
  if (!PER_N.includes(k as ConfigKind)) throw new Error(`--configs: ${k} is not one of ${PER_N.join(", ")}`);
  return k as ConfigKind;
});
/** Sampling rate of `perf record -a -e cpu-clock` during the measured rounds (0: no profile). */
const PERF_HZ = int(values.perf, "perf", 0, 10_000);
const PER_MEASUREMENT = Math.ceil(COUNT / ROUNDS);
const CLIENT: ClientOptions = { threads: THREADS, parallel: PARALLEL, cpus: values.pin ? "0" : undefined };

requireRoot("bench/uplinks-packet-path.ts");

const SPECS: RouterConfigSpec[] = [
  { kind: "plain", uplinks: 1 },
  { kind: "masq1", uplinks: 1 },
  ...NS.flatMap((n) => PER_N.filter((k) => KINDS.includes(k)).map((kind) => ({ kind, uplinks: n }))),
];

const { say, print } = report();

await withBenchNet(async (net) => {
  // Config files and nflb's state files go here, not to /run/nflb: the bench leaves nothing behind.
  const work = await net.tempDir();
  const env = { ...process.env, NFLB_STATE_DIR: join(work, "state") };
  const started = performance.now();
  const startLoad = loadLine();
  const topo = await buildUplinkTopology(net, {
    routers: SPECS.map((s) => ({ role: routerRole(s), uplinks: s.uplinks })),
    client: true,
  });
  const routers = topo.routers;
  const ctx: InstallContext = { net, dir: work, env };
  for (const [i, spec] of SPECS.entries()) await installConfig(ctx, spec, routers[i] as BenchRouter);
  const serverPid = await startConnServer(net, values.pin ? "1" : undefined);

  // Warm-up and sanity: every configuration carries traffic, without failures, over all its uplinks.
  const wBefore = await txPackets(net, routers);
  const warm = (await runConnClient(net, routers, 600, 1, CLIENT)).samples;
  const wAfter = await txPackets(net, routers);
  for (const [i, spec] of SPECS.entries()) {
    const r = routers[i] as BenchRouter;
    const s = warm.find((x) => x.target === i);
    if (!s || s.failed + s.notStarted > 0) throw new Error(`${r.role}: warm-up failed: ${JSON.stringify(s)}`);
    const want = linksCarrying(spec);
    const used = linksUsed(wBefore, wAfter, r.role, want);
    if (used !== want) throw new Error(`${r.role}: traffic used ${used} of ${want} uplinks`);
  }

  const before = await txPackets(net, routers);
  const profile = PERF_HZ ? new CpuProfile(PERF_HZ, join(work, "perf.data")) : undefined;
  profile?.start();
  let measured: Awaited<ReturnType<typeof runConnClient>>;
  try {
    measured = await runConnClient(net, routers, PER_MEASUREMENT, ROUNDS, CLIENT);
  } finally {
    await profile?.stop();
  }
  const { samples } = measured;
  const after = await txPackets(net, routers);
  if (profile) {
    profile.ours.add(serverPid).add(measured.pid);
    await profile.read(samples);
  }

  const rows = SPECS.map((spec, i) => {
    const ss = samples.filter((s) => s.target === i);
    const rate = summarize(ss.map((s) => s.perSecond));
    const ratio = ratioSummary(pairedRatios(samples, i, 0));
    const failed = ss.reduce((a, s) => a + s.failed + s.notStarted, 0);
    const ok = ss.reduce((a, s) => a + s.ok, 0);
    const role = (routers[i] as BenchRouter).role;
    return [
      CONFIG_LABELS[spec.kind](spec.uplinks),
      `${rate.median.toFixed(0)} (${rate.min.toFixed(0)}–${rate.max.toFixed(0)})`,
      i === 0 ? "1" : fmtRatio(ratio),
      ...(profile
        ? [profile.usPerConn(i, "all", ok).toFixed(1), profile.usPerConn(i, "kernel", ok).toFixed(1)]
        : []),
      `${ok} / ${failed}`,
      `${linksUsed(before, after, role, linksCarrying(spec))} / ${linksCarrying(spec)}`,
    ];
  });

  // Against the references, round by round (the same round's measurements are next to each other).
  const at = (kind: ConfigKind, n: number) => SPECS.findIndex((s) => s.kind === kind && s.uplinks === n);
  const masq = at("masq1", 1);
  const versus = (a: number, b: number) =>
    a < 0 || b < 0 ? "–" : fmtRatio(ratioSummary(pairedRatios(samples, a, b)));
  // The same from CPU per connection: reference's CPU over a's is a's rate over reference's.
  const pairedCpu = (how: "totalRatio" | "kernelRatio") => {
    const v = (a: number, b: number) =>
      a < 0 || b < 0 || !profile ? "–" : profile[how](samples, a, b, ROUNDS);
    return NS.map((n) => [
      String(n),
      v(at("nflb", n), at("numgen", n)),
      v(at("nflb", n), masq),
      v(at("numgen", n), masq),
      v(at("masqrules", n), masq),
      v(at("ecmp", n), masq),
    ]);
  };
  const paired = NS.map((n) => [
    String(n),
    versus(at("nflb", n), at("numgen", n)),
    versus(at("nflb", n), masq),
    versus(at("numgen", n), masq),
    versus(at("masqrules", n), masq),
    versus(at("ecmp", n), masq),
  ]);

  const iptVersion = (await exec(["iptables", "--version"])).stdout.trim();
  say(`### Packet path: new TCP connections per second through the router`);
  say();
  say(`${dateLine()}; ${await machineLine()}; ${iptVersion}; ${startLoad} at start.`);
  say();
  say(
    `${ROUNDS} rounds × ${PER_MEASUREMENT.toLocaleString("en")} connections per configuration and round ` +
      `(${(ROUNDS * PER_MEASUREMENT).toLocaleString("en")} per configuration), configurations interleaved, odd rounds ` +
      `in reverse order. Client: ${THREADS} threads × ${PARALLEL} connections in flight` +
      `${values.pin ? " on CPU 0 (server on CPU 1)" : ""}, each connect, read 1 byte ` +
      "(the server writes it and closes), close. Ratios are per round, against that round's plain forwarding.",
  );
  say();
  say(
    markdownTable(
      [
        "configuration",
        "conn/s median (min–max)",
        "ratio to plain: median [95 % CI] (IQR)",
        ...(profile ? ["CPU µs/conn", "of it kernel"] : []),
        "ok / failed",
        "uplinks used",
      ],
      rows,
    ),
  );
  say();
  say(
    "A rate over a reference's in the same round: median of the per-round ratios [95 % confidence " +
      "interval of that median] (interquartile range of the ratios):",
  );
  say();
  const pairHeader = [
    "uplinks",
    "nflb / bare numgen map",
    "nflb / one-link masquerade",
    "bare numgen / one-link masquerade",
    "masquerade + N fwmark rules / one-link masquerade",
    "multipath route / one-link masquerade",
  ];
  say(markdownTable(pairHeader, paired));
  if (profile) {
    say();
    say(
      `The same from CPU per connection (\`perf record -a -e cpu-clock -F ${PERF_HZ}\`, only the client's, the ` +
        "server's, ksoftirqd's and the idle task's softirq samples inside each measurement's window, user space " +
        "included): the reference's CPU per connection over the configuration's, over all rounds [95 % bootstrap " +
        "interval], i.e. the rate ratio with the cores to themselves; other load moves it far less than the rate:",
    );
    say();
    say(markdownTable(pairHeader, pairedCpu("totalRatio")));
    say();
    say(
      "And with the user-space CPU per connection taken as equal for both sides of a ratio (the client and " +
        "server run the same code whatever the router does, so their difference is noise): the router's " +
        "kernel work alone decides. The tightest figure:",
    );
    say();
    say(markdownTable(pairHeader, pairedCpu("kernelRatio")));
  }
  say();
  say(`${loadLine()} at end; whole run ${((performance.now() - started) / 1000).toFixed(0)} s.`);
});
print();
