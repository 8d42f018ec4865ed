// Why a child process costs more in a big daemon (issue 11): the time node's spawn() call blocks
// the event loop, starting /bin/true, from this process with a small heap and again after the
// heap was filled with small objects (as 5,000 services × 50 backends fill the daemon's), and the
// same command through the daemon's spawner (src/system/spawner.ts) from the big heap. All in one
// process, one run: the small-heap rows are the baseline.
//
//   node --max-old-space-size=4096 --max-semi-space-size=1 --import tsx bench/spawn-heap.ts [--mb 600] [--runs 30]
//
// Runs nothing as root and touches no network. Prints a markdown section for bench/RESULTS.md.
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { Spawner } from "../src/system/spawner.ts";
import { dateLine, loadLine, machineLine } from "./lib/report.ts";
import { fmtMs, markdownTable, summarize } from "./lib/stats.ts";

const { values } = parseArgs({
  options: { mb: { type: "string", default: "600" }, runs: { type: "string", default: "30" } },
  strict: true,
});
const MB = Number(values.mb);
const RUNS = Number(values.runs);
if (!Number.isInteger(MB) || MB < 50 || MB > 3000) throw new Error("--mb must be 50..3000");
if (!Number.isInteger(RUNS) || RUNS < 5 || RUNS > 200) throw new Error("--runs must be 5..200");

/** One /bin/true: how long the spawn() call blocked, and until it was reaped. */
function direct(): Promise<{ call: number; total: number }> {
  const t0 = performance.now();
  const c = spawn("/bin/true", [], { stdio: ["pipe", "pipe", "pipe"] });
  const call = performance.now() - t0;
  c.stdin.end();
  return new Promise((r) => c.on("close", () => r({ call, total: performance.now() - t0 })));
}

async function viaSpawner(s: Spawner): Promise<{ call: number; total: number }> {
  const t0 = performance.now();
  const p = s.run(["/bin/true"], {});
  const call = performance.now() - t0;
  if (!p) throw new Error("the spawner is not ready");
  await p;
  return { call, total: performance.now() - t0 };
}

async function measure(f: () => Promise<{ call: number; total: number }>) {
  const calls: number[] = [];
  const totals: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await f();
    calls.push(r.call);
    totals.push(r.total);
  }
  return { call: summarize(calls), total: summarize(totals) };
}

const rssMb = () => Math.round(process.memoryUsage.rss() / 2 ** 20);
const loadStart = loadLine();
// The spawner is started while this process is small, as the daemon's starts before it grows.
const spawner = new Spawner({ minRssBytes: 0 });
spawner.run(["/bin/true"], {});
for (let i = 0; i < 200 && !spawner.isReady; i++) await new Promise((r) => setTimeout(r, 25));
const rows: string[][] = [];
const row = (what: string, m: Awaited<ReturnType<typeof measure>>) =>
  rows.push([
    what,
    `${rssMb()} MiB`,
    `${fmtMs(m.call.median)} (${fmtMs(m.call.min)}–${fmtMs(m.call.max)})`,
    `${fmtMs(m.total.median)} (${fmtMs(m.total.min)}–${fmtMs(m.total.max)})`,
  ]);
row("spawn() from this process, small heap", await measure(direct));
row("through the spawner, small heap", await measure(() => viaSpawner(spawner)));
const keep: unknown[] = [];
while (process.memoryUsage().heapUsed < MB * 2 ** 20) {
  const a: unknown[] = [];
  for (let i = 0; i < 10_000; i++) a.push({ i, s: `x${i}`, k: [i, i + 1] });
  keep.push(a);
}
row(`spawn() from this process, heap filled to ${MB} MiB`, await measure(direct));
row(`through the spawner, heap filled to ${MB} MiB`, await measure(() => viaSpawner(spawner)));
spawner.close();

console.log(`### Starting a child process from a small and a big heap (issue 11)

${dateLine()}; ${await machineLine()}; ${loadStart} at start, ${loadLine()} at end.

\`\`\`sh
node --max-old-space-size=4096 --max-semi-space-size=1 --import tsx bench/spawn-heap.ts --mb ${MB} --runs ${RUNS}
\`\`\`

\`/bin/true\` ${RUNS} times per row, one at a time; "spawn() blocks" is how long the call held the
event loop (libuv forks there), "until reaped" until its \`close\` event; median (min–max) ms.

${markdownTable(["how", "RSS", "spawn() blocks ms", "until reaped ms"], rows)}
`);
void keep;
