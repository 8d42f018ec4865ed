// Probe-level failover figures: how long the uplink monitors (src/health/) take to call an uplink
// down after a blackhole and after a carrier loss, false transitions under random probe loss, and
// what probing 8 uplinks × 4 targets costs. The daemon's end-to-end figure (new connections work
// again) adds the reconcile/apply time on top of the detection time measured here.
//
//   node --import tsx bench/failover-probes.ts [--trials 20] [--loss-minutes 10] [--cpu-seconds 60]
//                                               [--only failover,loss,cpu]
//
// Needs root and fping. Builds an uplink lab (namespaces nlXXXX-*), installs nflb's data plane in
// its router with `bin/nflb apply`, and runs src/health/probe-cli.ts there. Prints a markdown
// section for bench/RESULTS.md on stdout, progress on stderr.
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ProbeEventLog, isChange } from "../src/health/probe-log.ts";
import { buildUplinkLab, type UplinkLab } from "../src/lab/uplink-lab.ts";
import { NFLB_BIN, tsNode } from "./lib/paths.ts";
import { dateLine, loadLine, machineLine, report, requireRoot } from "./lib/report.ts";
import { fmtSummaryMs, markdownTable, summarize } from "./lib/stats.ts";
import { prng, simulatedUplink } from "../testkit/fping-sim.ts";

const { values } = parseArgs({
  options: {
    trials: { type: "string", default: "20" },
    "loss-minutes": { type: "string", default: "10" },
    "cpu-seconds": { type: "string", default: "60" },
    only: { type: "string", default: "failover,loss,cpu" },
  },
  strict: true,
});
const TRIALS = Number(values.trials);
const LOSS_MIN = Number(values["loss-minutes"]);
const CPU_S = Number(values["cpu-seconds"]);
const PARTS = new Set(values.only.split(","));
if (!Number.isInteger(TRIALS) || TRIALS < 1 || TRIALS > 200) throw new Error("--trials must be 1..200");
if (!(LOSS_MIN > 0 && LOSS_MIN <= 120)) throw new Error("--loss-minutes must be within (0, 120]");
if (!(CPU_S >= 10 && CPU_S <= 600)) throw new Error("--cpu-seconds must be 10..600");

requireRoot("bench/failover-probes.ts");
const work = await mkdtemp(join(tmpdir(), "nflb-bench-probes-"));
const { say, print } = report();
const progress = (s: string) => process.stderr.write(`  … ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface UplinkSpec {
  index: number;
  probe: string;
}

function configYaml(lab: UplinkLab, ups: UplinkSpec[]): string {
  const lines = ["version: 1", "uplinks:"];
  for (const s of ups) {
    const u = lab.uplink(s.index);
    lines.push(
      `  isp${u.index}:`,
      `    interface: ${u.wanIf}`,
      `    gateway: [${u.gateway4}, "${u.gateway6}"]`,
    );
    lines.push(`    probe: ${s.probe}`);
  }
  lines.push("balance:", "  from: [lan0]", "");
  return lines.join("\n");
}

/** Run probe-cli in the router with this config until `fn` is done. */
async function withProbes<T>(
  lab: UplinkLab,
  yaml: string,
  names: string[],
  fn: (log: ProbeEventLog, pid: number) => Promise<T>,
  extra: string[] = [],
): Promise<T> {
  const file = join(work, `probe-${Date.now()}.yaml`);
  await writeFile(file, yaml);
  const proc = lab.spawn("router", tsNode("src/health/probe-cli.ts", ["-c", file, ...extra]));
  const log = new ProbeEventLog();
  proc.child.stdout?.on("data", (d: Buffer | string) => log.feed(d.toString()));
  try {
    await log.waitFor((e) => e.event === "ready", 30_000, 0, "probe-cli ready");
    const from = log.mark;
    await sleep(3000);
    const changed = log.since(from, (e) => e.event === "change");
    if (changed.length) throw new Error(`transitions while settling: ${JSON.stringify(changed)}`);
    void names;
    return await fn(log, proc.pid);
  } finally {
    await proc.stop(2000);
  }
}

const ICMP2 = (lab: UplinkLab, interval?: number) =>
  `{ targets: [${lab.addr.targets4.join(", ")}]${interval ? `, interval: ${interval}ms` : ""} }`;

async function failover(lab: UplinkLab): Promise<void> {
  say("#### Detection time (monitor calls isp1 down), 2 uplinks, ICMP to 2 targets");
  say();
  say(
    "Blackhole: ISP 1 forwards nothing (`cutUpstream`) while wan1 keeps its carrier; time from just before " +
      "the cut to the `change` event. Carrier: ISP 1 sets its end of the veth down; range from just after to " +
      "just before the `ip link set` command. Recovery: restore → `up` event. Defaults except `interval`: " +
      "timeout 500ms, down_after 3, up_after 10. A random 0–interval pause before each trial spreads the " +
      "fault over the probe schedule.",
  );
  say();
  const rows: string[][] = [];
  for (const interval of [200, 100]) {
    const yaml = configYaml(lab, [
      { index: 1, probe: ICMP2(lab, interval) },
      { index: 2, probe: ICMP2(lab, interval) },
    ]);
    await withProbes(lab, yaml, ["isp1", "isp2"], async (log) => {
      const bh: number[] = [];
      const bhUp: number[] = [];
      const carHi: number[] = [];
      const carLo: number[] = [];
      const start = log.mark;
      for (let i = 0; i < TRIALS; i++) {
        await sleep(300 + Math.random() * interval);
        let mark = log.mark;
        const t0 = Date.now();
        await lab.cutUpstream(1);
        bh.push((await log.waitFor(isChange("isp1", "down"), 10_000, mark, "blackhole down")).t - t0);
        mark = log.mark;
        const r0 = Date.now();
        await lab.restoreUpstream(1);
        bhUp.push((await log.waitFor(isChange("isp1", "up"), 20_000, mark, "up after restore")).t - r0);
        await sleep(300 + Math.random() * interval);
        mark = log.mark;
        const c0 = Date.now();
        await lab.carrierDown(1);
        const c1 = Date.now();
        const d = await log.waitFor(isChange("isp1", "down"), 10_000, mark, "carrier down");
        carHi.push(d.t - c0);
        carLo.push(Math.max(0, d.t - c1));
        mark = log.mark;
        await lab.carrierUp(1);
        await log.waitFor(isChange("isp1", "up"), 20_000, mark, "up after carrier");
        progress(
          `interval ${interval}ms trial ${i + 1}/${TRIALS}: blackhole ${bh.at(-1)} ms, carrier ≤${carHi.at(-1)} ms`,
        );
      }
      const others = log.since(start, (e) => e.event === "change" && e.name !== "isp1").length;
      const bound = 3 * interval + 500;
      rows.push([
        `${interval}ms`,
        "blackhole → down",
        `${fmtSummaryMs(summarize(bh))}`,
        `${bound} ms`,
        String(others),
      ]);
      rows.push([
        `${interval}ms`,
        "carrier loss → down",
        `${fmtSummaryMs(summarize(carLo))} … ${fmtSummaryMs(summarize(carHi))}`,
        "—",
        String(others),
      ]);
      rows.push([
        `${interval}ms`,
        "restore → up",
        `${fmtSummaryMs(summarize(bhUp))}`,
        `≈ ${10 * interval} ms + RTT`,
        String(others),
      ]);
    });
  }
  say(
    markdownTable(
      [`interval`, `event (${TRIALS} trials)`, "min / median / max ms", "design bound", "isp2 transitions"],
      rows,
    ),
  );
  say();
}

/**
 * Transitions in an hour under iid probe loss (model): the uplink monitor itself (fping prober with
 * its fast re-probes, state machine) against a simulated fping on a manual clock
 * (testkit/fping-sim.ts), mean of `seeds` runs.
 */
async function modelTransitionsPerHour(
  loss: number,
  targets: number,
  intervalMs: number,
  seeds = 10,
): Promise<number> {
  let total = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const rnd = prng(seed);
    const sim = simulatedUplink({
      targets: Array.from({ length: targets }, (_, i) => `198.18.200.${i + 1}`),
      lost: () => rnd() < loss,
      probe: { interval: `${intervalMs}ms` },
      rttMs: 20,
    });
    sim.m.start();
    await sim.run(3_600_000, 50);
    await sim.m.stop();
    total += sim.changes.length;
  }
  return total / seeds;
}

async function lossRun(lab: UplinkLab): Promise<void> {
  const levels = [
    { index: 1, loss: 0.05 },
    { index: 2, loss: 0.1 },
    { index: 3, loss: 0.2 },
  ];
  say(`#### False transitions under random probe loss (${LOSS_MIN} min, 2 ICMP targets, defaults)`);
  say();
  say(
    "Each ISP drops that share of the router's packets toward the internet at random (nft `numgen`), all " +
      "three at the same time. `model` runs the uplink monitor (fping prober with its fast re-probes, state " +
      "machine) for one hour against a simulated fping with independent losses and 20 ms RTTs (mean of 10 " +
      "seeds), which is what the measured run samples.",
  );
  say();
  const yaml = configYaml(
    lab,
    levels.map((l) => ({ index: l.index, probe: ICMP2(lab) })),
  );
  // The model first: it needs no lab, and a failure there must not cost a 10-minute measurement.
  const model = new Map<number, number>();
  for (const l of levels) model.set(l.loss, await modelTransitionsPerHour(l.loss, 2, 200));
  const rows: string[][] = [];
  await withProbes(
    lab,
    yaml,
    levels.map((l) => `isp${l.index}`),
    async (log) => {
      for (const l of levels) await lab.setLoss(l.index, l.loss);
      const mark = log.mark;
      const t0 = Date.now();
      const end = t0 + LOSS_MIN * 60_000;
      while (Date.now() < end) {
        await sleep(Math.min(60_000, end - Date.now()));
        progress(`loss run: ${Math.round((Date.now() - t0) / 1000)} s`);
      }
      for (const l of levels) await lab.setLoss(l.index, 0);
      const hours = (Date.now() - t0) / 3_600_000;
      for (const l of levels) {
        const name = `isp${l.index}`;
        const rounds = log.since(mark, (e) => e.event === "round" && e.name === name);
        const probes = rounds.reduce((n, e) => n + (e.results?.length ?? 0), 0);
        const lost = rounds.reduce((n, e) => n + (e.results?.filter((r) => r.rttMs === null).length ?? 0), 0);
        const failed = rounds.filter((e) => !e.good).length;
        const transitions = log.since(mark, (e) => e.event === "change" && e.name === name).length;
        rows.push([
          `${Math.round(l.loss * 100)}%`,
          `${((100 * lost) / Math.max(1, probes)).toFixed(1)}%`,
          String(rounds.length),
          String(failed),
          String(transitions),
          (transitions / hours).toFixed(1),
          (model.get(l.loss) ?? NaN).toFixed(2),
        ]);
      }
    },
  );
  say(
    markdownTable(
      [
        "ISP loss",
        "probes lost",
        "rounds",
        "failed rounds",
        "transitions",
        "per hour (measured)",
        "per hour (model)",
      ],
      rows,
    ),
  );
  say();
}

async function ticks(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks
  } catch {
    return 0;
  }
}

async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = await readFile(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

async function status(pid: number, key: string): Promise<number> {
  const s = await readFile(`/proc/${pid}/status`, "utf8");
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(s);
  return m ? Number(m[1]) / 1024 : NaN;
}

async function cpuRun(lab: UplinkLab): Promise<void> {
  say(`#### Cost of probing: 8 uplinks × 4 ICMP targets (2 IPv4, 2 IPv6), defaults, ${CPU_S} s`);
  say();
  say(
    "probe-cli with `--no-rounds` (it prints only transitions, like the daemon logs), one fping per uplink " +
      "and one `ip monitor`. CPU = utime+stime over the window of the Node process and its children, as a " +
      "share of one core; RSS of the Node process at the end.",
  );
  say();
  const targets = [...lab.addr.targets4, ...lab.addr.targets6].map((t) => `"${t}"`).join(", ");
  const ups = lab.uplinks.map((u) => ({ index: u.index, probe: `{ targets: [${targets}] }` }));
  const yaml = configYaml(lab, ups);
  await withProbes(
    lab,
    yaml,
    ups.map((u) => `isp${u.index}`),
    async (log, pid) => {
      const kids = await childrenOf(pid);
      const all = [pid, ...kids];
      const before = await Promise.all(all.map(ticks));
      const t0 = performance.now();
      await sleep(CPU_S * 1000);
      const after = await Promise.all(all.map(ticks));
      const secs = (performance.now() - t0) / 1000;
      const hz = 100; // USER_HZ on Linux
      const share = (i: number) => ((after[i] ?? 0) - (before[i] ?? 0)) / hz / secs;
      const node = share(0);
      const helpers = kids.reduce((s, _, k) => s + share(k + 1), 0);
      const rss = await status(pid, "VmRSS");
      const hwm = await status(pid, "VmHWM");
      const transitions = log.since(0, (e) => e.event === "change").length;
      say(
        markdownTable(
          [
            "probes/s",
            "Node CPU",
            `helpers CPU (${kids.length} processes)`,
            "total CPU",
            "Node RSS (peak)",
            "transitions",
          ],
          [
            [
              String((8 * 4 * 1000) / 200),
              `${(node * 100).toFixed(2)}%`,
              `${(helpers * 100).toFixed(2)}%`,
              `${((node + helpers) * 100).toFixed(2)}%`,
              `${rss.toFixed(0)} MB (${hwm.toFixed(0)} MB)`,
              String(transitions),
            ],
          ],
        ),
      );
    },
    ["--no-rounds"],
  );
  say();
}

let lab: UplinkLab | undefined;
const cleanup = async () => {
  await lab?.destroy();
  await rm(work, { recursive: true, force: true });
};
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.once(sig, () => {
    void cleanup().finally(() => process.exit(130));
  });

try {
  lab = await buildUplinkLab({ uplinks: 8, v6: true });
  const applyFile = join(work, "apply.yaml");
  await writeFile(
    applyFile,
    configYaml(
      lab,
      lab.uplinks.map((u) => ({ index: u.index, probe: "{}" })),
    ),
  );
  await lab.run("router", [NFLB_BIN, "apply", "-c", applyFile], { timeoutMs: 60_000 });
  say("### Uplink probes: detection, false alarms, cost");
  say();
  say(`${dateLine()}; ${await machineLine()}; ${loadLine()} at start.`);
  say();
  say(
    `\`\`\`sh\nnode --import tsx bench/failover-probes.ts --trials ${TRIALS} --loss-minutes ${LOSS_MIN} --cpu-seconds ${CPU_S} --only ${[...PARTS].join(",")}\n\`\`\``,
  );
  say();
  if (PARTS.has("failover")) await failover(lab);
  if (PARTS.has("cpu")) await cpuRun(lab);
  if (PARTS.has("loss")) await lossRun(lab);
  say(`${loadLine()} at end.`);
  print();
} finally {
  await cleanup();
}
