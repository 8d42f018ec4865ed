// How fast passive health takes a blackholed uplink out of the split: `nflb run` in an uplink lab
// (2 uplinks, default probe settings), a LAN client opening 50 new TCP connections/s, isp1's
// upstream blackholed (the ISP drops everything both ways, the carrier stays up), TRIALS times.
// The baseline, in the same run: the same trials with `passive: false` (the probes alone);
// `minimal`: passive health with `balance.conntrack_events: minimal`.
//
//   node --import tsx bench/uplinks-passive.ts [--trials 20] [--only passive,minimal,probes,cpu]
//                                              [--cpu-rate 200] [--cpu-seconds 30]
//
// Per trial: the start of the last connection that failed, minus the cut (testkit/passive-trial.ts:
// the start of the cut command, or the last connection through isp1 that still worked); the
// figure from the cut command's start is printed too. `cpu`: the CPU time of the daemon and its
// conntrack child under steady traffic: passive on (conntrack_events all, then minimal) and off. Needs root and fping. Prints a
// markdown section for bench/RESULTS.md on stdout, progress on stderr.
import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildUplinkLab } from "../src/lab/uplink-lab.ts";
import { allUp, labConfig, startDaemon, waitStatus } from "../testkit/daemon-harness.ts";
import { startConnRate } from "../testkit/conn-rate.ts";
import { blackholeTrial } from "../testkit/passive-trial.ts";
import { dateLine, loadLine, machineLine, requireRoot } from "./lib/report.ts";
import { markdownTable, summarize } from "./lib/stats.ts";

const { values } = parseArgs({
  options: {
    trials: { type: "string", default: "20" },
    only: { type: "string", default: "passive,probes" },
    "cpu-rate": { type: "string", default: "200" },
    "cpu-seconds": { type: "string", default: "30" },
  },
  strict: true,
});
const TRIALS = Number(values.trials);
if (!Number.isInteger(TRIALS) || TRIALS < 1 || TRIALS > 200) throw new Error("--trials must be 1..200");
const PARTS = values.only.split(",");
const CPU_RATE = Number(values["cpu-rate"]);
const CPU_S = Number(values["cpu-seconds"]);
if (!(CPU_RATE >= 1 && CPU_RATE <= 1000)) throw new Error("--cpu-rate must be 1..1000");
if (!(CPU_S >= 5 && CPU_S <= 600)) throw new Error("--cpu-seconds must be 5..600");

/** CPU time (user + system, ms) of a process and, by name, of its direct children. */
async function cpuMs(pid: number): Promise<{ self: number; children: Map<string, number> }> {
  const hz = 100;
  const stat = async (p: number) => {
    const text = await readFile(`/proc/${p}/stat`, "utf8");
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const comm = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"));
    return { comm, ms: ((Number(rest[11]) + Number(rest[12])) * 1000) / hz };
  };
  const self = (await stat(pid)).ms;
  const children = new Map<string, number>();
  const kids = (await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "")).trim();
  for (const k of kids ? kids.split(/\s+/).map(Number) : []) {
    const s = await stat(k).catch(() => null);
    if (s) children.set(s.comm, (children.get(s.comm) ?? 0) + s.ms);
  }
  return { self, children };
}
/**
 * A second listener in the router's namespace, as the daemon's conntrack subscribes (NEW, UPDATE
 * and DESTROY): the event lines each connection makes conntrack print, counted while `fn` runs.
 */
async function countEvents<T>(ns: string, fn: () => Promise<T>): Promise<{ result: T; lines: number }> {
  const child = spawn(
    "ip",
    ["netns", "exec", ns, "conntrack", "-E", "-e", "NEW,UPDATE,DESTROY", "-o", "id"],
    {
      stdio: ["ignore", "pipe", "ignore"],
    },
  );
  let lines = 0;
  child.stdout.on("data", (d: Buffer) => {
    for (const b of d) if (b === 10) lines++;
  });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const result = await fn();
    await new Promise((r) => setTimeout(r, 300));
    return { result, lines };
  } finally {
    child.kill("SIGTERM");
  }
}
requireRoot("bench/uplinks-passive.ts");

const progress = (s: string) => process.stderr.write(`  … ${s}\n`);
// Lab processes are unref'd: this keeps the process alive while it waits for them.
const keepAlive = setInterval(() => undefined, 1000);
const lab = await buildUplinkLab({ uplinks: 2 });
const dir = await mkdtemp(join(tmpdir(), "nflb-bench-passive-"));
const rows: string[][] = [];
const cpuRows: string[][] = [];

/** conntrack's TIME_WAIT timeout in the router's namespace during the CPU part (s). */
const TIME_WAIT_S = 1;

type Mode = "passive" | "minimal" | "probes";
const MODE_NAMES: Record<Mode, string> = {
  passive: "passive (default: `conntrack_events: all`)",
  minimal: "passive, `conntrack_events: minimal`",
  probes: "`passive: false` (probes only)",
};

/** The lab's config for a mode: passive off for `probes`, the kernel-side event mask for `minimal`. */
function modeConfig(mode: Mode): string {
  let yaml = labConfig(lab).replace(
    /( {4}probe: .*\n)/g,
    `$1${mode === "probes" ? "    passive: false\n" : ""}`,
  );
  if (mode === "minimal") yaml = yaml.replace(/^( {2}method: .*\n)/m, "$1  conntrack_events: minimal\n");
  if (mode === "minimal" && !yaml.includes("conntrack_events"))
    throw new Error("no balance.method to follow");
  return yaml;
}

/** CPU of the daemon and its conntrack while the LAN opens CPU_RATE new connections/s for CPU_S s. */
async function cpuCost(mode: Mode): Promise<string[]> {
  const file = join(dir, `cpu-${mode}.yaml`);
  await writeFile(file, modeConfig(mode));
  const daemon = await startDaemon(lab, file);
  try {
    await waitStatus(lab, allUp, 15_000, "every uplink up");
    await new Promise((r) => setTimeout(r, 2000));
    const { result: cpu, lines } = await countEvents(lab.ns.router, async () => {
      const a = await cpuMs(daemon.proc.pid);
      const c = await startConnRate(lab, { rate: CPU_RATE, timeoutMs: 2000, durationMs: CPU_S * 1000 });
      const { summary } = await c.done;
      return { a, b: await cpuMs(daemon.proc.pid), summary };
    });
    const { a, b, summary } = cpu;
    const d = b.self - a.self;
    const ct = (b.children.get("conntrack") ?? 0) - (a.children.get("conntrack") ?? 0);
    progress(
      `cpu ${mode}: daemon ${d} ms, conntrack ${ct} ms, ${summary.ok} ok ${summary.failed} failed, ${lines} events`,
    );
    const conns = summary.ok + summary.failed;
    return [
      MODE_NAMES[mode],
      String(conns),
      (d / CPU_S).toFixed(1),
      (ct / CPU_S).toFixed(1),
      (((d + ct) / conns) * 1000).toFixed(0),
      (lines / conns).toFixed(2),
    ];
  } finally {
    await daemon.stop();
  }
}
const medians = new Map<string, number>();
const load: string[] = [];
try {
  for (const part of PARTS) {
    if (part !== "passive" && part !== "minimal" && part !== "probes" && part !== "cpu")
      throw new Error(`--only: unknown part ${part}`);
    if (part === "cpu") {
      // Each connection's DESTROY inside the window it was opened in (TIME_WAIT entries otherwise
      // end 120 s later, in another mode's run): the steady state's events per connection.
      execFileSync("ip", [
        "netns",
        "exec",
        lab.ns.router,
        "sysctl",
        "-qw",
        `net.netfilter.nf_conntrack_tcp_timeout_time_wait=${TIME_WAIT_S}`,
      ]);
      for (const mode of ["passive", "minimal", "probes"] as const) cpuRows.push(await cpuCost(mode));
      load.push(`cpu: ${loadLine()}`);
      continue;
    }
    const file = join(dir, `${part}.yaml`);
    await writeFile(file, modeConfig(part));
    const daemon = await startDaemon(lab, file);
    try {
      await waitStatus(lab, allUp, 15_000, "every uplink up");
      const ms: number[] = [];
      const fromCmd: number[] = [];
      const failed: number[] = [];
      const gaps: number[] = [];
      let passiveDowns = 0;
      for (let k = 0; k < TRIALS; k++) {
        const r = await blackholeTrial(lab, () => daemon.logs());
        ms.push(r.lastFailedMs);
        fromCmd.push(r.fromCommandMs);
        failed.push(r.failed);
        gaps.push(r.maxGapMs);
        if (r.reason.startsWith("passive:")) passiveDowns++;
        progress(
          `${part} trial ${k + 1}: ${r.lastFailedMs} ms (${r.fromCommandMs} from the cut command, which took ${r.cutMs}), ${r.failed} failed, client pause ${r.maxGapMs} ms; ${r.reason}`,
        );
      }
      const s = summarize(ms);
      const f = summarize(failed);
      const c = summarize(fromCmd);
      medians.set(part, s.median);
      const within = ms.filter((x) => x <= 500).length;
      rows.push([
        MODE_NAMES[part],
        String(s.n),
        String(Math.round(s.median)),
        String(Math.round(s.max)),
        `${within} of ${s.n}`,
        `${Math.round(c.median)} / ${Math.round(c.max)}`,
        `${f.median} / ${f.max}`,
        `${passiveDowns} of ${s.n}`,
        String(Math.max(...gaps)),
      ]);
      load.push(`${part}: ${loadLine()}`);
    } finally {
      await daemon.stop();
    }
  }
} finally {
  clearInterval(keepAlive);
  await lab.destroy();
  await rm(dir, { recursive: true, force: true });
}

const out: string[] = [];
out.push(`#### Passive uplink health: ${rows.length ? "blackhole detection" : "CPU cost"} (${dateLine()})`);
out.push("");
out.push(`${await machineLine()}; ${load.join("; ")}.`);
if (rows.length) {
  out.push("");
  out.push(
    "2 uplinks, random split 1:1, ICMP probes to 2 targets at the defaults (interval 200ms, timeout 500ms, " +
      "down_after 3). A LAN client opens 50 new TCP connections/s (each given 800 ms); about 1 s in, isp1's " +
      "ISP drops everything (both directions, carrier up). Time = start of the last failed connection − the " +
      "cut, taken at the latest moment it is known not to have happened: the start of the cut command, or " +
      "the start of the last connection through isp1 that still worked, if later (the cut command, one " +
      "`nft -f` in the ISP's namespace, takes ~20 ms, more on a starved machine). Longest client pause: the client starts one connection every 20 ms; " +
      "a longer pause in the 600 ms after the cut means the (shared) machine starved it, and the daemon too.",
  );
  out.push("");
  out.push(
    markdownTable(
      [
        "detection",
        "trials",
        "median ms",
        "max ms",
        "≤ 500 ms",
        "from the cut command: median / max ms",
        "failed conns median / max",
        "down by passive",
        "longest client pause ms",
      ],
      rows,
    ),
  );
}
if (cpuRows.length) {
  out.push("");
  out.push(
    `CPU cost, ${CPU_RATE} new connections/s for ${CPU_S} s (no fault; CPU time from /proc, so the load of ` +
      "the shared machine matters little): the daemon, and its `conntrack -E` child (passive health only). " +
      `conntrack's TIME_WAIT timeout in the router's namespace set to ${TIME_WAIT_S} s, so that each ` +
      "connection's DESTROY comes within the run (steady state); events counted by a second `conntrack -E -e " +
      "NEW,UPDATE,DESTROY` in the router's namespace.",
  );
  out.push("");
  out.push(
    markdownTable(
      [
        "daemon",
        "connections",
        "daemon CPU ms/s",
        "conntrack CPU ms/s",
        "CPU µs per connection (both)",
        "events per connection (NEW, UPDATE, DESTROY)",
      ],
      cpuRows,
    ),
  );
}
const a = medians.get("passive");
const b = medians.get("probes");
if (a !== undefined && b !== undefined) {
  out.push("");
  out.push(`Median with passive health: ${(a / b).toFixed(2)}× the probes-only median of the same run.`);
}
const m = medians.get("minimal");
if (a !== undefined && m !== undefined) {
  out.push("");
  out.push(
    `Median with \`conntrack_events: minimal\`: ${(m / a).toFixed(2)}× the default's median of the same run.`,
  );
}
process.stdout.write(out.join("\n") + "\n");
