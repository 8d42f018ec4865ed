// Services at scale (issue 11): the whole path `nflb apply` and the daemon take, from config text
// to the kernel, for 100 maglev services × 10 backends, 1 maglev service × 1,000 backends,
// 5,000 round-robin services × 50 backends and maglev services × 50 backends; and the one-backend
// change the daemon sends (re-plan everything, diff against the applied model, `nft -f` the
// difference). Wall and CPU ms of each in-process step, wall ms of each `nft -f`, script sizes,
// and the nft times as ratios against baselines measured in the same run, in the same namespace:
// `nft -f` of an empty table (the process and transaction floor) and of one plain set holding as
// many elements as the services' table (what nft costs per element, whatever the layout).
//
//   node --import tsx bench/services-scale.ts [--runs N] [--maglev-services N] [--only TEXT]
//
// Needs root. nft runs inside a throw-away namespace (nlXXXX-lb), removed at the end. Prints a
// markdown section for bench/RESULTS.md.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseConfigSource } from "../src/config/load.ts";
import { allHealthy, desiredState, type Desired } from "../src/plan/desired.ts";
import type { Ruleset } from "../src/nft/model.ts";
import { diff } from "../src/nft/diff.ts";
import { DaemonModel } from "../src/daemon/model.ts";
import { withBenchNet, type BenchNet } from "./lib/bench-net.ts";
import { dateLine, loadLine, machineLine, report, requireRoot } from "./lib/report.ts";
import { fmtMs, markdownTable, summarize } from "./lib/stats.ts";
import { servicesConfigYaml } from "./lib/services-config.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    "maglev-services": { type: "string", default: "500" },
    // Only the configs whose label contains this text (e.g. "round-robin", "100 × 10").
    only: { type: "string" },
  },
  strict: true,
});
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20) throw new Error("--runs must be 1..20");
const MAGLEV_50 = Number(values["maglev-services"]);
if (!Number.isInteger(MAGLEV_50) || MAGLEV_50 < 1 || MAGLEV_50 > 5000)
  throw new Error("--maglev-services must be 1..5000");
requireRoot("bench/services-scale.ts");

/** Changes on the daemon's path per config (in process, so cheap: the median says what a warm daemon costs). */
const DAEMON_CHANGES = 20;

const ALL_CONFIGS = [
  { services: 100, backends: 10, scheduler: "maglev" },
  { services: 1, backends: 1000, scheduler: "maglev" },
  { services: 5000, backends: 50, scheduler: "round-robin" },
  { services: MAGLEV_50, backends: 50, scheduler: "maglev" },
] as const;

const label = (c: (typeof ALL_CONFIGS)[number]) =>
  `${c.services.toLocaleString("en")} × ${c.backends.toLocaleString("en")} ${c.scheduler}`;
const CONFIGS = ALL_CONFIGS.filter((c) => values.only === undefined || label(c).includes(values.only));
if (CONFIGS.length === 0) throw new Error(`--only ${values.only}: no config matches`);

/**
 * CPU (user + system) ms of this process's waited-for children (`/proc/self/stat` cutime and
 * cstime, clock ticks of 10 ms): 10 ms resolution.
 */
function childCpuMs(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[13]) + Number(f[14])) * 10;
}

/** Wall and CPU (user + system) ms of a synchronous step. */
function step<T>(f: () => T): { wall: number; cpu: number; value: T } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = f();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000, value };
}

const elementsOf = (r: Ruleset) =>
  r.tables.reduce(
    (n, t) =>
      n + t.objects.reduce((m, o) => m + (o.kind === "set" || o.kind === "map" ? o.elements.length : 1), 0),
    0,
  );

/** Chains, rules and named objects: what nft 1.0.6 reads back from the kernel before any command. */
const cachedOf = (r: Ruleset) =>
  r.tables.reduce(
    (n, t) => n + t.objects.reduce((m, o) => m + 1 + (o.kind === "chain" ? o.rules.length : 0), 0),
    0,
  );

/** A table with one plain set of `n` distinct IPv4 addresses: nft's cost per element. */
function plainSet(n: number): string {
  const out = ["add table inet nflb", "delete table inet nflb", "table inet nflb {", "\tset plain {"];
  out.push("\t\ttype ipv4_addr");
  const keys: string[] = [];
  for (let i = 0; i < n; i++) keys.push(`${10 + (i >> 24)}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  out.push(`\t\telements = { ${keys.join(", ")} }`, "\t}", "}");
  return out.join("\n") + "\n";
}
const EMPTY = "add table inet nflb\ndelete table inet nflb\ntable inet nflb {\n}\n";

const { say, print } = report();
const kib = (s: string) =>
  s.length >= 10 << 20 ? `${(s.length / 1048576).toFixed(1)} MiB` : `${(s.length / 1024).toFixed(1)} KiB`;
const med = (xs: number[]) => summarize(xs).median;
const ms = (xs: number[]) =>
  xs.length > 1
    ? `${fmtMs(med(xs))} (${fmtMs(Math.min(...xs))}–${fmtMs(Math.max(...xs))})`
    : fmtMs(xs[0] ?? 0);

await withBenchNet(async (net: BenchNet) => {
  await net.addNs("lb");
  // CPU (user + system) of every `nft -f`, in call order: the wall time on a shared machine is
  // mostly waiting for a core.
  const nftCpu: number[] = [];
  const nft = async (script: string): Promise<number> => {
    const c0 = childCpuMs();
    const t0 = performance.now();
    const r = await net.exec("lb", ["nft", "-f", "-"], { input: script, timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`nft: ${r.stderr.slice(0, 2000)}`);
    const wall = performance.now() - t0;
    nftCpu.push(childCpuMs() - c0);
    return wall;
  };
  const times = async (n: number, f: () => Promise<number>) => {
    const xs: number[] = [];
    for (let i = 0; i < n; i++) xs.push(await f());
    return xs;
  };
  const dropTable = () => net.exec("lb", ["nft", "delete", "table", "inet", "nflb"]);

  say("### Services at scale: 5,000 × 50 round-robin, maglev tables sized 100 slots per backend (issue 11)");
  say();
  say("```sh");
  say(
    `node --import tsx bench/services-scale.ts --runs ${RUNS} --maglev-services ${MAGLEV_50}${values.only !== undefined ? ` --only ${JSON.stringify(values.only)}` : ""}`,
  );
  say("```");
  say();
  say(`${dateLine()}; ${await machineLine()}; ${loadLine()} at start.`);
  say();
  const rows: string[][] = [];
  const sizes: string[][] = [];
  await nft(EMPTY);
  const empty = await times(Math.max(RUNS, 5), () => nft(EMPTY));
  const emptyCpu = nftCpu.slice(-empty.length);
  await dropTable();
  for (const c of CONFIGS) {
    process.stderr.write(`-- ${label(c)}\n`);
    const text = servicesConfigYaml(c.services, c.backends, c.scheduler);
    const parsed = step(() => parseConfigSource(text, "bench.yaml"));
    const config = parsed.value.config;
    const facts = { interfaces: new Map() };
    const healthy = allHealthy(config);
    const planned = step(() => desiredState(config, healthy, facts));
    const full: Desired = planned.value;
    const script = step(() => full.nft);
    const elements = elementsOf(full.model);
    const plain = plainSet(elements);
    const plainMs = await times(RUNS, async () => {
      const t = await nft(plain);
      await dropTable();
      return t;
    });
    const freshCpu: number[] = [];
    const fresh = await times(RUNS, async () => {
      const t = await nft(script.value);
      freshCpu.push(nftCpu.at(-1) ?? 0);
      await dropTable();
      return t;
    });
    await nft(script.value);
    // One backend down, then up again, alternately (each run changes the kernel); the daemon's
    // path: re-plan every service against the new health, diff against the applied model.
    const first = config.services?.s0?.backends[0]?.address ?? "";
    let applied = full.model;
    const planMs: number[] = [];
    const planCpu: number[] = [];
    const updMs: number[] = [];
    const updCpu: number[] = [];
    let update = "";
    for (let i = 0; i < RUNS * 2; i++) {
      const health = i % 2 === 0 ? { ...healthy, services: { s0: { [first]: { up: false } } } } : healthy;
      const d = step(() => {
        const model = desiredState(config, health, facts).model;
        return { model, script: diff(applied, model).script };
      });
      planMs.push(d.wall);
      planCpu.push(d.cpu);
      if (i === 0) update = d.value.script;
      updMs.push(await nft(d.value.script));
      updCpu.push(nftCpu.at(-1) ?? 0);
      applied = d.value.model;
    }
    // The daemon's own path for a runtime weight (set, then back): its health view from the
    // observations and overrides, the plan against the plan in force, the diff. Not applied.
    const model = new DaemonModel(parsed.value);
    let inForce = desiredState(config, model.input().health, facts);
    const daemonMs: number[] = [];
    const daemonCpu: number[] = [];
    for (let i = 0; i < DAEMON_CHANGES; i++) {
      if (i % 2 === 0) model.overrides.weights.set("s0", new Map([[first, 7]]));
      else model.overrides.weights.delete("s0");
      const was = inForce;
      const d = step(() => {
        const next = desiredState(config, model.input().health, facts, was.services);
        return { next, script: diff(was.model, next.model).script };
      });
      if (!d.value.script) throw new Error("a weight change sent nothing");
      daemonMs.push(d.wall);
      daemonCpu.push(d.cpu);
      inForce = d.value.next;
    }
    await dropTable();
    const e = med(empty);
    rows.push(
      [label(c), "parse + validate the config", `${fmtMs(parsed.wall)} (CPU ${fmtMs(parsed.cpu)})`, ""],
      [
        label(c),
        "plan the whole model (`desiredState`)",
        `${fmtMs(planned.wall)} (CPU ${fmtMs(planned.cpu)})`,
        "",
      ],
      [label(c), "serialize the whole script", `${fmtMs(script.wall)} (CPU ${fmtMs(script.cpu)})`, ""],
      [
        label(c),
        `\`nft -f\` whole table, first load`,
        ms(fresh),
        `${(med(fresh) / med(plainMs)).toFixed(2)}× a plain set of as many elements (${ms(plainMs)} ms); nft CPU ${ms(freshCpu)}`,
      ],
      [label(c), "one backend down/up: `desiredState` + `diff`", ms(planMs), `CPU ${ms(planCpu)}`],
      [
        label(c),
        `runtime weight set/back, the daemon's path (\`DaemonModel.input\` + \`desiredState\` + \`diff\`), ${DAEMON_CHANGES} changes`,
        ms(daemonMs),
        `CPU ${ms(daemonCpu)}; first ${fmtMs(daemonMs[0] ?? 0)}`,
      ],
      [
        label(c),
        "one backend down/up: `nft -f` the update",
        ms(updMs),
        `${(med(updMs) / e).toFixed(2)}× an empty table (${ms(empty)} ms, nft CPU ${ms(emptyCpu)}); nft CPU ${ms(updCpu)}`,
      ],
    );
    sizes.push([
      label(c),
      `${kib(script.value)}, ${elements.toLocaleString("en")} objects and elements (${cachedOf(full.model).toLocaleString("en")} chains, rules, sets and counters)`,
      `${update.length.toLocaleString("en")} B, ${update.trim().split("\n").length} lines`,
    ]);
  }
  say(
    `nft runs in a throw-away namespace (\`ip netns exec … nft -f -\`, process start included); ${RUNS} runs of each nft step (median (min–max) ms), in-process steps once (wall, and CPU of this process: on a loaded machine wall is mostly waiting for a core). "One backend down/up" alternates the first backend of the first service down and up, ${RUNS} times each.`,
  );
  say();
  say(markdownTable(["config", "step", "ms", "against the baseline"], rows));
  say();
  say("Sizes:");
  say();
  say(markdownTable(["config", "whole table", "one-backend update"], sizes));
  say();
  say(`${loadLine()} at end.`);
});
print();
