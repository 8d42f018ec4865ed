// Config load speed (issues 11 and 12): parse + validate of the two big configs the other benches
// use, each in a fresh process as `nflb check`/`plan`/`apply`/`run` do it once: 5,000 round-robin
// services × 50 backends (bench/services-scale.ts's config, 9.5 MiB, 270,000 lines) and 32
// uplinks with one rule of 10,000 prefixes (bench/uplinks-apply.ts's `rules1x10000`). Against the
// `yaml` package's plain parse of the same text in a fresh process (no positions, no validation:
// what reading the file as YAML at all costs), and `bin/nflb check --offline` end to end against
// `node -e 0`, in one interleaved run.
//
//   node --import tsx bench/config-load.ts [--runs 7] [--src DIR]
//
// --src DIR times the parse + validate of another checkout's src/ (the before numbers) next to this
// one's. No root, no network: the configs go to a temporary directory, removed at the end.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { exec } from "../src/system/exec.ts";
import { NFLB_BIN, tsNode } from "./lib/paths.ts";
import { dateLine, loadLine, machineLine, report } from "./lib/report.ts";
import { servicesConfigYaml } from "./lib/services-config.ts";
import { fmtMs, markdownTable, summarize } from "./lib/stats.ts";
import { benchConfigYaml } from "./lib/uplink-config.ts";
import type { BenchUplink } from "./lib/uplink-topology.ts";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "7" }, src: { type: "string" } },
  strict: true,
});
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 50) throw new Error("--runs must be 1..50");
const other = values.src ? resolve(values.src) : undefined;

const dir = mkdtempSync(join(tmpdir(), "nflb-config-load-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

const uplinks: BenchUplink[] = Array.from({ length: 32 }, (_, i) => ({
  index: i + 1,
  iface: `wan${i + 1}`,
  peer: `up${i + 1}`,
  address: `100.64.${i}.2`,
  gateway: `100.64.${i}.1`,
}));
const CONFIGS = [
  {
    name: "32 uplinks + 1 rule × 10,000 prefixes",
    text: benchConfigYaml({ uplinks, rules: { count: 1, prefixesPerRule: 10_000 } }),
  },
  { name: "5,000 services × 50 backends", text: servicesConfigYaml(5000, 50, "round-robin") },
].map((c, i) => {
  const file = join(dir, `config${i}.yaml`);
  writeFileSync(file, c.text);
  return { ...c, file };
});

interface Sample {
  importMs: number;
  wall: number;
  cpu: number;
}
async function child(file: string, what: "nflb" | "yaml", src?: string): Promise<Sample> {
  const r = await exec(tsNode("bench/lib/config-load-child.ts", [file, what, ...(src ? [src] : [])]), {
    timeoutMs: 600_000,
  });
  if (r.code !== 0) throw new Error(`config-load-child ${what} ${file}: ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout) as Sample;
}
async function wallOf(argv: string[]): Promise<number> {
  const t0 = performance.now();
  const r = await exec(argv, { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.slice(-2000)}`);
  return performance.now() - t0;
}

// The launcher rebuilds its bundle when src/ changed: not inside the timed runs.
execFileSync(NFLB_BIN, ["--build"], { stdio: "inherit" });

const { say, print } = report();
say("### Config load: parse + validate of 5,000 × 50 services and of 10,000 prefixes (issues 11, 12)");
say();
say("```sh");
say(`node --import tsx bench/config-load.ts --runs ${RUNS}${other ? ` --src ${values.src}` : ""}`);
say("```");
say();
say(`${dateLine()}; ${await machineLine()}; ${loadLine()} at start.`);
say();

const samples = new Map<string, Sample[]>();
const walls = new Map<string, number[]>();
const add = <T>(m: Map<string, T[]>, k: string, v: T) => m.set(k, [...(m.get(k) ?? []), v]);
for (let run = 0; run < RUNS; run++) {
  process.stderr.write(`-- run ${run + 1}/${RUNS}\n`);
  add(walls, "node", await wallOf([process.execPath, "-e", "0"]));
  // Odd runs in reverse, so neither side always runs right after the other.
  const order = run % 2 ? [...CONFIGS].reverse() : CONFIGS;
  for (const c of order) {
    add(samples, `${c.name}|nflb`, await child(c.file, "nflb"));
    if (other) add(samples, `${c.name}|other`, await child(c.file, "nflb", other));
    add(samples, `${c.name}|yaml`, await child(c.file, "yaml"));
    add(walls, `${c.name}|check`, await wallOf([NFLB_BIN, "check", "--offline", "-c", c.file]));
  }
}

const med = (xs: number[]) => summarize(xs).median;
const range = (xs: number[]) => {
  const s = summarize(xs);
  return xs.length > 1 ? `${fmtMs(s.median)} (${fmtMs(s.min)}–${fmtMs(s.max)})` : fmtMs(s.median);
};
const rows: string[][] = [];
const nodeMs = walls.get("node") ?? [];
for (const c of CONFIGS) {
  const yaml = samples.get(`${c.name}|yaml`) ?? [];
  const yamlCpu = med(yaml.map((s) => s.cpu));
  const row = (label: string, xs: Sample[]) => {
    const cpu = xs.map((s) => s.cpu);
    rows.push([
      c.name,
      label,
      range(xs.map((s) => s.wall)),
      range(cpu),
      `${(med(cpu) / yamlCpu).toFixed(2)}×`,
      fmtMs(med(xs.map((s) => s.importMs))),
    ]);
  };
  row("nflb parse + validate (`parseConfigSource`)", samples.get(`${c.name}|nflb`) ?? []);
  if (other) row(`the same, ${values.src}`, samples.get(`${c.name}|other`) ?? []);
  row("`yaml` package's `parse(text)` alone (baseline)", yaml);
  const check = walls.get(`${c.name}|check`) ?? [];
  rows.push([
    c.name,
    "`bin/nflb check --offline` end to end",
    range(check),
    "",
    `${(med(check) / med(nodeMs)).toFixed(2)}× \`node -e 0\` (${fmtMs(med(nodeMs))} ms)`,
    "",
  ]);
}
say(
  `Each step in a fresh process (tsx), ${RUNS} runs interleaved; median (min–max) ms. Wall and CPU (user + system of the whole process, GC threads included) of the one call; the module imports apart.`,
);
say();
say(markdownTable(["config", "step", "wall ms", "CPU ms", "CPU against `yaml` parse", "imports ms"], rows));
say();
say(`${loadLine()} at end.`);
print();
