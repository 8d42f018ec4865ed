// How fast passive health takes a blackholed uplink out of the split: `nflb run` in an uplink lab
// (2 uplinks, default probe settings), a LAN client opening 50 new TCP connections/s, isp1's
// upstream blackholed (the ISP drops everything both ways, the carrier stays up), TRIALS times.
// The baseline, in the same run: the same trials with `passive: false` (the probes alone).
//
//   node --import tsx bench/uplinks-passive.ts [--trials 20] [--only passive,probes]
//
// Per trial: the start of the last connection that failed, minus the moment just before the cut
// command (its own run time, ~20 ms, is inside the figure). Needs root and fping. Prints a
// markdown section for bench/RESULTS.md on stdout, progress on stderr.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildUplinkLab } from "../src/lab/uplink-lab.ts";
import { allUp, labConfig, startDaemon, waitStatus } from "../testkit/daemon-harness.ts";
import { blackholeTrial } from "../testkit/passive-trial.ts";
import { dateLine, loadLine, machineLine, requireRoot } from "./lib/report.ts";
import { markdownTable, summarize } from "./lib/stats.ts";

const { values } = parseArgs({
  options: { trials: { type: "string", default: "20" }, only: { type: "string", default: "passive,probes" } },
  strict: true,
});
const TRIALS = Number(values.trials);
if (!Number.isInteger(TRIALS) || TRIALS < 1 || TRIALS > 200) throw new Error("--trials must be 1..200");
const PARTS = values.only.split(",");
requireRoot("bench/uplinks-passive.ts");

const progress = (s: string) => process.stderr.write(`  … ${s}\n`);
// Lab processes are unref'd: this keeps the process alive while it waits for them.
const keepAlive = setInterval(() => undefined, 1000);
const lab = await buildUplinkLab({ uplinks: 2 });
const dir = await mkdtemp(join(tmpdir(), "nflb-bench-passive-"));
const rows: string[][] = [];
const medians = new Map<string, number>();
const load: string[] = [];
try {
  for (const part of PARTS) {
    if (part !== "passive" && part !== "probes") throw new Error(`--only: unknown part ${part}`);
    const file = join(dir, `${part}.yaml`);
    const yaml = labConfig(lab).replace(
      /( {4}probe: .*\n)/g,
      `$1${part === "probes" ? "    passive: false\n" : ""}`,
    );
    await writeFile(file, yaml);
    const daemon = await startDaemon(lab, file);
    try {
      await waitStatus(lab, allUp, 15_000, "every uplink up");
      const ms: number[] = [];
      const failed: number[] = [];
      const gaps: number[] = [];
      let passiveDowns = 0;
      for (let k = 0; k < TRIALS; k++) {
        const r = await blackholeTrial(lab, () => daemon.logs());
        ms.push(r.lastFailedMs);
        failed.push(r.failed);
        gaps.push(r.maxGapMs);
        if (r.reason.startsWith("passive:")) passiveDowns++;
        progress(
          `${part} trial ${k + 1}: ${r.lastFailedMs} ms, ${r.failed} failed, client pause ${r.maxGapMs} ms; ${r.reason}`,
        );
      }
      const s = summarize(ms);
      const f = summarize(failed);
      medians.set(part, s.median);
      const within = ms.filter((x) => x <= 500).length;
      rows.push([
        part === "passive" ? "passive (default)" : "`passive: false` (probes only)",
        String(s.n),
        String(Math.round(s.median)),
        String(Math.round(s.max)),
        `${within} of ${s.n}`,
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
out.push(`#### Passive uplink health: blackhole detection (${dateLine()})`);
out.push("");
out.push(`${await machineLine()}; ${load.join("; ")}.`);
out.push("");
out.push(
  "2 uplinks, random split 1:1, ICMP probes to 2 targets at the defaults (interval 200ms, timeout 500ms, " +
    "down_after 3). A LAN client opens 50 new TCP connections/s (each given 800 ms); about 1 s in, isp1's " +
    "ISP drops everything (both directions, carrier up). Time = start of the last failed connection − the " +
    "moment before the cut command. Longest client pause: the client starts one connection every 20 ms; " +
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
      "failed conns median / max",
      "down by passive",
    ],
    rows,
  ),
);
const a = medians.get("passive");
const b = medians.get("probes");
if (a !== undefined && b !== undefined) {
  out.push("");
  out.push(`Median with passive health: ${(a / b).toFixed(2)}× the probes-only median of the same run.`);
}
process.stdout.write(out.join("\n") + "\n");
