// How long `nflb` takes to answer before it does any work: `--help`, and `status` with no daemon
// listening, against `node -e 0` (Node's own start-up), in one interleaved run so the ratios hold
// on a noisy machine. First what users run: bin/nflb (the launcher) and the bundle it builds
// (dist/main.mjs). Then, for comparison, the CLI built with npm packages external (esbuild, code
// splitting) into a temporary directory under dist/ (so the bundles find node_modules), and as a
// single file (everything loaded for every verb).
//
//   node --import tsx bench/cli-startup.ts [--runs 30]
//
// No root, no network: `status` asks 127.0.0.1:1, where nothing listens.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { build, type BuildOptions } from "esbuild";
import { NFLB_BIN, REPO } from "./lib/paths.ts";
import { dateLine, loadLine, machineLine } from "./lib/report.ts";
import { summarize } from "./lib/stats.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "30" } } });
const runs = Math.max(3, Math.min(200, Number(values.runs) || 30));

const common: BuildOptions = {
  entryPoints: [join(REPO, "src/cli/main.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  logLevel: "error",
};
// Output next to the repo's node_modules resolution: put the bundles inside the checkout's dist/.
const out = mkdtempSync(join(REPO, "dist", ".bench-"));
process.on("exit", () => rmSync(out, { recursive: true, force: true }));
await build({ ...common, splitting: true, outdir: join(out, "split") });
await build({ ...common, outfile: join(out, "single.mjs") });

// What users run: the launcher and the bundle it builds (commander, yaml and zod inside).
execFileSync(NFLB_BIN, ["--build"], { stdio: "inherit" });

const node = process.execPath;
const cases: { name: string; argv: string[] }[] = [
  { name: "node -e 0", argv: [node, "-e", "0"] },
  { name: "bin/nflb --help (the launcher, as shipped)", argv: [NFLB_BIN, "--help"] },
  {
    name: "node dist/main.mjs --help (the bundle alone)",
    argv: [node, join(REPO, "dist/main.mjs"), "--help"],
  },
  {
    name: "bin/nflb status, no daemon",
    argv: [NFLB_BIN, "status", "-c", "/nonexistent", "--api", "127.0.0.1:1"],
  },
  { name: "nflb --help (split)", argv: [node, join(out, "split/main.js"), "--help"] },
  {
    name: "nflb status, no daemon (split)",
    argv: [node, join(out, "split/main.js"), "status", "-c", "/nonexistent", "--api", "127.0.0.1:1"],
  },
  { name: "nflb --help (single bundle)", argv: [node, join(out, "single.mjs"), "--help"] },
  {
    name: "nflb status, no daemon (single bundle)",
    argv: [node, join(out, "single.mjs"), "status", "-c", "/nonexistent", "--api", "127.0.0.1:1"],
  },
];

function once(argv: string[]): number {
  const [cmd = "", ...args] = argv;
  const t0 = performance.now();
  try {
    execFileSync(cmd, args, { stdio: "ignore", timeout: 30_000 });
  } catch {
    // `status` with no daemon exits 2: that is the case being measured.
  }
  return performance.now() - t0;
}

const load0 = loadLine();
for (const c of cases) once(c.argv); // warm the page cache
const samples = cases.map(() => [] as number[]);
for (let i = 0; i < runs; i++) cases.forEach((c, j) => samples[j]?.push(once(c.argv)));

const baseline = samples[0] ?? [];
const lines = [
  `### CLI start-up (${runs} interleaved runs each)`,
  "",
  `${dateLine()}; ${await machineLine()}; ${load0} at start, ${loadLine()} at end.`,
  `Command: \`node --import tsx bench/cli-startup.ts --runs ${runs}\`. Whole process, wall time;`,
  "ratio = median of the per-run ratios to the `node -e 0` run next to it.",
  "",
  "| command | min ms | median ms | max ms | × node -e 0 |",
  "| --- | ---: | ---: | ---: | ---: |",
];
cases.forEach((c, j) => {
  const s = summarize(samples[j] ?? []);
  const ratios = (samples[j] ?? []).map((ms, i) => ms / (baseline[i] ?? ms));
  lines.push(
    `| ${c.name} | ${s.min.toFixed(0)} | ${s.median.toFixed(0)} | ${s.max.toFixed(0)} | ${summarize(ratios).median.toFixed(2)} |`,
  );
});
process.stdout.write(lines.join("\n") + "\n");
