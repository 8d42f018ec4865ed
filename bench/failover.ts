// Failover time of `nflb run` and its cost, in the uplink lab (needs root).
//   node --import tsx bench/failover.ts [--trials 20] [--intervals default,100ms] [--cpu-seconds 60] [--write]
//   node --import tsx bench/failover.ts --cost-only [--cpu-seconds 60]     (prints the cost part only)
//
// Failover: 2 uplinks (1:1), ICMP probes to 2 targets each; a LAN poller starts 8 short TCP
// connections every 50 ms (300 ms timeout each). Per trial, uplink 1's upstream is blackholed or
// its carrier dropped (kinds interleaved); the time is from the cut until every later batch
// succeeded in full, i.e. "new connections all succeed again". The daemon's log gives the
// detection time (uplink down) and when the in-place update was applied.
// Cost: 8 uplinks × 4 ICMP targets at default probe settings; CPU of the daemon and its children
// (fping, ip monitor) over --cpu-seconds, and their RSS.
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { UplinkLab } from "../src/lab/uplink-lab.ts";
import {
  allUp,
  labConfig,
  recoveredAt,
  sleep,
  startDaemon,
  startPoller,
  status,
  waitStatus,
  type RunningDaemon,
} from "../testkit/daemon-harness.ts";
import { dateLine, loadLine, machineLine, requireRoot } from "./lib/report.ts";
import { fmtSummaryMs, markdownTable, summarize } from "./lib/stats.ts";
import { REPO } from "./lib/paths.ts";

const { values } = parseArgs({
  options: {
    trials: { type: "string", default: "20" },
    intervals: { type: "string", default: "default,100ms" },
    "cpu-seconds": { type: "string", default: "60" },
    write: { type: "boolean", default: false },
    "cost-only": { type: "boolean", default: false },
  },
});
const trials = Math.max(1, Math.min(100, Number(values.trials)));
const intervals = (values.intervals ?? "default").split(",").filter(Boolean);
const cpuSeconds = Math.max(0, Math.min(600, Number(values["cpu-seconds"])));
const command = `node --import tsx bench/failover.ts ${process.argv.slice(2).join(" ")}`.trim();
const KINDS = ["blackhole", "carrier"] as const;
type Kind = (typeof KINDS)[number];

requireRoot("bench/failover.ts");

interface Trial {
  kind: Kind;
  recoveryMs: number | null;
  detectMs: number | null;
  appliedMs: number | null;
}

const labs = new Set<UplinkLab>();
const dirs = new Set<string>();
async function cleanup(): Promise<void> {
  await Promise.all([...labs].map((l) => l.destroy()));
  await Promise.all([...dirs].map((d) => rm(d, { recursive: true, force: true })));
}
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.once(sig, () => void cleanup().then(() => process.exit(130)));

async function withDaemon<T>(
  lab: UplinkLab,
  config: string,
  body: (d: RunningDaemon) => Promise<T>,
): Promise<T> {
  labs.add(lab);
  await lab.build();
  const dir = await mkdtemp(join(tmpdir(), "nflb-bench-"));
  dirs.add(dir);
  const file = join(dir, "nflb.yaml");
  await writeFile(file, config);
  const d = await startDaemon(lab, file);
  try {
    return await body(d);
  } finally {
    await d.stop();
    await lab.destroy();
    labs.delete(lab);
    await rm(dir, { recursive: true, force: true });
    dirs.delete(dir);
  }
}

/** ms from `since` to the first log line matching `msg`, minus the line's `minus` field (ms). */
const firstLog = (d: RunningDaemon, since: number, msg: RegExp, minus?: string) => {
  const l = d.logs().find((x) => Date.parse(String(x.time)) >= since && msg.test(String(x.msg)));
  if (!l) return null;
  return Date.parse(String(l.time)) - since - (minus ? Number(l[minus] ?? 0) : 0);
};

async function runFailover(interval: string): Promise<Trial[]> {
  const lab = new UplinkLab({ uplinks: 2 });
  const out: Trial[] = [];
  // The config needs the lab's addresses, known before build (they do not depend on the prefix).
  const config = labConfig(lab, interval === "default" ? {} : { interval });
  await withDaemon(lab, config, async (d) => {
    await waitStatus(lab, allUp, 20_000, "every uplink up");
    const poller = await startPoller(lab, { durationMs: trials * KINDS.length * 15_000 + 30_000 });
    try {
      for (let i = 0; i < trials; i++) {
        for (const kind of i % 2 ? [...KINDS].reverse() : KINDS) {
          await waitStatus(
            lab,
            (s) => allUp(s) && s.uplinks.every((u) => u.share > 0),
            20_000,
            "every uplink up and in the split",
          );
          await sleep(500);
          const cut = Date.now();
          if (kind === "blackhole") await lab.cutUpstream(1);
          else await lab.carrierDown(1);
          await waitStatus(lab, (s) => s.uplinks[0]?.share === 0, 10_000, "isp1 out of the split");
          await sleep(1500);
          const end = Date.now();
          if (kind === "blackhole") await lab.restoreUpstream(1);
          else await lab.carrierUp(1);
          const at = recoveredAt(
            poller.batches().filter((b) => b.t < end),
            cut,
          );
          out.push({
            kind,
            recoveryMs: at === null ? null : at - cut,
            detectMs: firstLog(d, cut, /^uplink isp1 down$/),
            // The log line follows the routing change; the split moved routing_ms before it.
            appliedMs: firstLog(d, cut, /^applied \(update\)$/, "routing_ms"),
          });
          process.stderr.write(
            `  ${interval} ${kind} #${i + 1}: ${out.at(-1)?.recoveryMs ?? "never"} ms (${loadLine()})\n`,
          );
        }
      }
    } finally {
      await poller.stop();
    }
  });
  return out;
}

// ---- cost ---------------------------------------------------------------------------------

const CLK_TCK = 100;

async function procStat(pid: number): Promise<{ ppid: number; cpuTicks: number; rssKiB: number } | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start at ") ".
    const f = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
    return { ppid: Number(f[1]), cpuTicks: Number(f[11]) + Number(f[12]), rssKiB: rss };
  } catch {
    return null;
  }
}

/** The daemon's own CPU ticks and RSS, and its children's (fping, ip monitor), now. */
async function tree(pid: number) {
  const self = await procStat(pid);
  if (!self) throw new Error(`daemon ${pid} is gone`);
  const children: { pid: number; cpuTicks: number; rssKiB: number }[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = await procStat(Number(name));
    if (s?.ppid === pid) children.push({ pid: Number(name), ...s });
  }
  return { self, children };
}

async function runCost(): Promise<{
  cpuSelf: number;
  cpuChildren: number;
  rssSelfMiB: number;
  rssSelfMaxMiB: number;
  rssChildrenMiB: number;
  children: number;
}> {
  const lab = new UplinkLab({ uplinks: 8 });
  const targets = (i: number) => [...lab.addr.targets4, lab.addr.server4, lab.uplink(i).inetSide4];
  const text = labConfig(lab).replace(/probe: \{ targets: \[[^\]]*\] \}/g, () => "PROBE");
  let n = 0;
  const config = text.replace(/PROBE/g, () => `probe: { targets: [${targets(++n).join(", ")}] }`);
  return withDaemon(lab, config, async (d) => {
    await waitStatus(lab, allUp, 30_000, "every uplink up");
    await sleep(5000);
    const a = await tree(d.proc.pid);
    const t0 = performance.now();
    // The daemon's RSS moves with its GC cycles (±5 MiB): sample it every second, keep the highest.
    let rssMaxKiB = a.self.rssKiB;
    for (let left = cpuSeconds * 1000; left > 0; left = t0 + cpuSeconds * 1000 - performance.now()) {
      await sleep(Math.min(1000, left));
      rssMaxKiB = Math.max(rssMaxKiB, (await procStat(d.proc.pid))?.rssKiB ?? 0);
    }
    const b = await tree(d.proc.pid);
    const secs = (performance.now() - t0) / 1000;
    const st = await status(lab);
    if (!st.uplinks.every((u) => u.state === "up"))
      throw new Error("an uplink went down during the cost run");
    const childTicks = (t: typeof a) => t.children.reduce((s, c) => s + c.cpuTicks, 0);
    return {
      cpuSelf: (b.self.cpuTicks - a.self.cpuTicks) / CLK_TCK / secs,
      cpuChildren: (childTicks(b) - childTicks(a)) / CLK_TCK / secs,
      rssSelfMiB: b.self.rssKiB / 1024,
      rssSelfMaxMiB: Math.max(rssMaxKiB, b.self.rssKiB) / 1024,
      rssChildrenMiB: b.children.reduce((s, c) => s + c.rssKiB, 0) / 1024,
      children: b.children.length,
    };
  });
}

function costLines(c: Awaited<ReturnType<typeof runCost>>): string[] {
  return [
    `Cost with 8 uplinks × 4 ICMP targets at default probe settings, measured over ${cpuSeconds} s after`,
    "start-up, from /proc (the daemon runs as `bin/nflb run`: plain Node on the esbuild bundle in dist/):",
    "",
    markdownTable(
      ["", "CPU (share of one core)", "RSS at the end (highest, sampled every second)"],
      [
        [
          "daemon (node)",
          pct(c.cpuSelf),
          `${c.rssSelfMiB.toFixed(1)} MiB (${c.rssSelfMaxMiB.toFixed(1)} MiB)`,
        ],
        [
          `its ${c.children} children (fping, ip monitor)`,
          pct(c.cpuChildren),
          `${c.rssChildrenMiB.toFixed(1)} MiB`,
        ],
        ["total", pct(c.cpuSelf + c.cpuChildren), `${(c.rssSelfMiB + c.rssChildrenMiB).toFixed(1)} MiB`],
      ],
    ),
    "",
  ];
}

// ---- report -------------------------------------------------------------------------------

/** This bench's part of RESULTS.md: a subsection of `## Failover` (other benches add theirs). */
const MINE = "### nflb run: failover and cost";

/** Replace this bench's subsection, or add it (and `## Failover`) without touching anything else. */
function placeSection(doc: string, section: string): string {
  const body = section.trimEnd() + "\n\n";
  const head = /^## Failover[ \t]*$/m.exec(doc);
  if (!head) return doc.trimEnd() + "\n\n## Failover\n\n" + body;
  const start = doc.indexOf(MINE, head.index);
  const nextTop = doc.slice(head.index + 1).search(/^## /m);
  const end = nextTop < 0 ? doc.length : head.index + 1 + nextTop;
  if (start >= 0 && start < end) {
    const rest = doc.slice(start + MINE.length).search(/^##+ /m);
    const stop = rest < 0 ? doc.length : Math.min(end, start + MINE.length + rest);
    return doc.slice(0, start) + body + doc.slice(stop);
  }
  const after = head.index + head[0].length + 1;
  return doc.slice(0, after) + "\n" + body + doc.slice(after).replace(/^\n+/, "");
}

const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
const fmt = (xs: (number | null)[]) => {
  const v = xs.filter((x): x is number => x !== null);
  return v.length ? fmtSummaryMs(summarize(v)) : "–";
};

// --cost-only: the cost alone, printed and never written (the subsection in RESULTS.md also holds
// the failover table, which this run does not measure).
if (values["cost-only"]) {
  try {
    const head = [
      `${dateLine()}; ${await machineLine()}; ${loadLine()} at start.`,
      "",
      "```sh",
      command,
      "```",
      "",
    ];
    const body = costLines(await runCost());
    process.stdout.write([...head, ...body, `${loadLine()} at the end.`, ""].join("\n"));
  } finally {
    await cleanup();
  }
  process.exit(0);
}

try {
  const startLoad = loadLine();
  const lines: string[] = [
    MINE,
    "",
    `${dateLine()}; ${await machineLine()}; ${startLoad} at start.`,
    "",
    "```sh",
    command,
    "```",
    "",
  ];
  const rows: string[][] = [];
  for (const interval of intervals) {
    const series = await runFailover(interval);
    for (const kind of KINDS) {
      const t = series.filter((x) => x.kind === kind);
      const never = t.filter((x) => x.recoveryMs === null).length;
      rows.push([
        kind === "blackhole" ? "upstream blackholed" : "carrier lost",
        interval === "default" ? "defaults (200 ms)" : interval,
        String(t.length),
        fmt(t.map((x) => x.recoveryMs)) + (never ? ` (${never} never)` : ""),
        fmt(t.map((x) => x.detectMs)),
        fmt(t.map((x) => x.appliedMs)),
      ]);
    }
  }
  lines.push(
    "Time from the cut until new LAN connections all succeed again (8 connections every 50 ms, 300 ms",
    "timeout each: the figure has ~50 ms granularity), and, from the daemon's log, when the uplink was",
    "declared down and when the in-place nft update (the new split) was in the kernel (min / median / max, ms):",
    "",
    markdownTable(
      ["failure", "probe interval", "trials", "all succeed again", "declared down", "split switched"],
      rows,
    ),
    "",
  );
  if (cpuSeconds > 0) lines.push(...costLines(await runCost()));
  lines.push(`${loadLine()} at the end.`, "");
  const section = lines.join("\n");
  process.stdout.write(section + "\n");
  if (values.write) {
    const file = join(REPO, "bench/RESULTS.md");
    const old = await readFile(file, "utf8").catch(() => "# Benchmark results\n");
    await writeFile(file, placeSection(old, section).replace(/\n+$/, "\n"));
  }
} finally {
  await cleanup();
}
