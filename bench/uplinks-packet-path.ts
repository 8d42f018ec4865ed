// Packet-path cost: new TCP connections per second from a client through a router to a server
// behind N uplinks, comparing in the same run
//   plain forwarding | one-link nft masquerade | nflb (random, masquerade) | the bare numgen map design
//   | the seeds' iptables nth recipe
// for N = 2, 8, 32. Every configuration has its own router namespace, installed once, side by side
// between one client and one upstream namespace; one client process then interleaves short
// measurements over all of them (A B C … then … C B A, ROUNDS times), and each figure is also
// given as a ratio to the same round's plain forwarding, which cancels drift on a shared machine.
//
//   node --import tsx bench/uplinks-packet-path.ts [--count 100000] [--rounds 50] [--uplinks 2,8,32]
//                                                  [--threads 2] [--parallel 32]
//   (npm run bench:uplinks runs both uplink benches)
//
// --count is per configuration, split evenly over the rounds. Needs root; everything happens in
// namespaces named nlXXXX-*, removed at the end.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { exec } from "../src/system/exec.ts";
import { withBenchNet, type BenchNet } from "./lib/bench-net.ts";
import type { ConnSample } from "./lib/conn-client.ts";
import { tsNode } from "./lib/paths.ts";
import { dateLine, loadLine, machineLine, requireRoot } from "./lib/report.ts";
import {
  CONFIG_LABELS,
  installConfig,
  routerRole,
  type InstallContext,
  type RouterConfigSpec,
} from "./lib/router-configs.ts";
import { markdownTable, summarize } from "./lib/stats.ts";
import { buildUplinkTopology, type BenchRouter } from "./lib/uplink-topology.ts";

const PORT = 8080;

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "100000" },
    rounds: { type: "string", default: "50" },
    uplinks: { type: "string", default: "2,8,32" },
    threads: { type: "string", default: "2" },
    parallel: { type: "string", default: "32" },
  },
  strict: true,
});
const int = (s: string | undefined, name: string, min: number, max: number) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be ${min}..${max}`);
  return n;
};
const COUNT = int(values.count, "count", 100, 200_000);
const ROUNDS = int(values.rounds, "rounds", 1, 50);
const THREADS = int(values.threads, "threads", 1, 16);
const PARALLEL = int(values.parallel, "parallel", 1, 1024);
const NS = (values.uplinks ?? "").split(",").map((s) => int(s, "uplinks", 1, 32));
const PER_MEASUREMENT = Math.ceil(COUNT / ROUNDS);

requireRoot("bench/uplinks-packet-path.ts");

const SPECS: RouterConfigSpec[] = [
  { kind: "plain", uplinks: 1 },
  { kind: "masq1", uplinks: 1 },
  ...NS.flatMap((n): RouterConfigSpec[] => [
    { kind: "nflb", uplinks: n },
    { kind: "numgen", uplinks: n },
    { kind: "iptables", uplinks: n },
  ]),
];

/** tx packets of each uplink of each router. */
async function txPackets(net: BenchNet, routers: readonly BenchRouter[]): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const r of routers) {
    const links = JSON.parse(await net.run(r.role, ["ip", "-j", "-s", "link", "show"])) as {
      ifname: string;
      stats64?: { tx?: { packets?: number } };
    }[];
    const tx = new Map(links.map((l) => [l.ifname, l.stats64?.tx?.packets ?? 0]));
    out.set(
      r.role,
      r.uplinks.map((u) => tx.get(u.iface) ?? 0),
    );
  }
  return out;
}

/** Per router: how many of the configuration's uplinks carried at least a third of an even share. */
function linksUsed(
  before: Map<string, number[]>,
  after: Map<string, number[]>,
  role: string,
  n: number,
): number {
  const b = before.get(role) ?? [];
  const deltas = (after.get(role) ?? []).slice(0, n).map((v, i) => v - (b[i] ?? 0));
  const total = deltas.reduce((x, y) => x + y, 0);
  return deltas.filter((d) => d > 0 && d >= total / n / 3).length;
}

async function runClient(
  net: BenchNet,
  routers: readonly BenchRouter[],
  count: number,
  rounds: number,
): Promise<ConnSample[]> {
  const argv = tsNode("bench/lib/conn-client.ts", [
    ...routers.flatMap((r) => ["--target", `${r.server}:${PORT}`]),
    ...["--count", String(count), "--rounds", String(rounds)],
    ...["--threads", String(THREADS), "--parallel", String(PARALLEL), "--deadline-ms", "600000"],
  ]);
  const out = await net.run("client", argv, { timeoutMs: 900_000 });
  return (JSON.parse(out.trim().split("\n").pop() ?? "{}") as { samples: ConnSample[] }).samples;
}

const out: string[] = [];
const say = (s = "") => {
  out.push(s);
  process.stderr.write(s + "\n");
};

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
  const server = net.spawn("upstream", tsNode("bench/lib/conn-server.ts", ["--listen", `0.0.0.0:${PORT}`]));
  await server.waitForLine(/"ready":true/, 60_000);

  // Warm-up and sanity: every configuration carries traffic, without failures, over all its uplinks.
  const wBefore = await txPackets(net, routers);
  const warm = await runClient(net, routers, 600, 1);
  const wAfter = await txPackets(net, routers);
  for (const [i, spec] of SPECS.entries()) {
    const r = routers[i] as BenchRouter;
    const s = warm.find((x) => x.target === i);
    if (!s || s.failed + s.notStarted > 0) throw new Error(`${r.role}: warm-up failed: ${JSON.stringify(s)}`);
    const used = linksUsed(wBefore, wAfter, r.role, spec.uplinks);
    if (used !== spec.uplinks) throw new Error(`${r.role}: traffic used ${used} of ${spec.uplinks} uplinks`);
  }

  const before = await txPackets(net, routers);
  const samples = await runClient(net, routers, PER_MEASUREMENT, ROUNDS);
  const after = await txPackets(net, routers);

  const plainRate = (round: number) =>
    samples.find((s) => s.target === 0 && s.round === round)?.perSecond ?? NaN;
  const rows = SPECS.map((spec, i) => {
    const ss = samples.filter((s) => s.target === i);
    const rate = summarize(ss.map((s) => s.perSecond));
    const ratio = summarize(ss.map((s) => s.perSecond / plainRate(s.round)));
    const failed = ss.reduce((a, s) => a + s.failed + s.notStarted, 0);
    const ok = ss.reduce((a, s) => a + s.ok, 0);
    const role = (routers[i] as BenchRouter).role;
    return [
      CONFIG_LABELS[spec.kind](spec.uplinks),
      `${rate.median.toFixed(0)} (${rate.min.toFixed(0)}–${rate.max.toFixed(0)})`,
      i === 0 ? "1" : `${ratio.median.toFixed(3)} (${ratio.min.toFixed(3)}–${ratio.max.toFixed(3)})`,
      `${ok} / ${failed}`,
      `${linksUsed(before, after, role, spec.uplinks)} / ${spec.uplinks}`,
    ];
  });

  // nflb against its references, round by round (the same round's measurements are next to each other).
  const rateOf = (i: number, round: number) =>
    samples.find((s) => s.target === i && s.round === round)?.perSecond ?? NaN;
  const versus = (a: number, b: number) => {
    const rs = summarize(samples.filter((s) => s.target === a).map((s) => s.perSecond / rateOf(b, s.round)));
    return `${rs.median.toFixed(3)} (${rs.min.toFixed(3)}–${rs.max.toFixed(3)})`;
  };
  const masq = SPECS.findIndex((s) => s.kind === "masq1");
  const paired = NS.map((n) => {
    const nflb = SPECS.findIndex((s) => s.kind === "nflb" && s.uplinks === n);
    const ng = SPECS.findIndex((s) => s.kind === "numgen" && s.uplinks === n);
    return [String(n), versus(nflb, ng), versus(nflb, masq)];
  });

  const iptVersion = (await exec(["iptables", "--version"])).stdout.trim();
  say(`### Packet path: new TCP connections per second through the router`);
  say();
  say(`${dateLine()}; ${await machineLine()}; ${iptVersion}; ${startLoad} at start.`);
  say();
  say(
    `${ROUNDS} rounds × ${PER_MEASUREMENT.toLocaleString("en")} connections per configuration and round ` +
      `(${(ROUNDS * PER_MEASUREMENT).toLocaleString("en")} per configuration), configurations interleaved, odd rounds ` +
      `in reverse order. Client: ${THREADS} threads × ${PARALLEL} connections in flight, each connect, read 1 byte ` +
      "(the server writes it and closes), close. Ratios are per round, against that round's plain forwarding.",
  );
  say();
  say(
    markdownTable(
      [
        "configuration",
        "conn/s median (min–max)",
        "ratio to plain: median (min–max)",
        "ok / failed",
        "uplinks used",
      ],
      rows,
    ),
  );
  say();
  say("nflb's rate over a reference's in the same round, median (min–max) of the per-round ratios:");
  say();
  say(markdownTable(["uplinks", "nflb / bare numgen map", "nflb / one-link masquerade"], paired));
  say();
  say(`${loadLine()} at end; whole run ${((performance.now() - started) / 1000).toFixed(0)} s.`);
});
process.stdout.write(out.join("\n") + "\n");
