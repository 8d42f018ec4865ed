// Reload duration for 32 uplinks and 10,000 rule prefixes: a weight-only change (an in-place diff)
// against a structural one (the table replaced, sticky maps carried over), with a reload of the
// unchanged config as the baseline measured in the same run. In-process, through the Reconciler
// `nflb run` uses, inside a namespace with 32 veth uplinks (bench/lib/reload-pieces.ts).
//
//   node --import tsx bench/uplinks-reload.ts [--runs 5] [--sticky 1000]
//
// Needs root. Everything happens in namespaces named nlXXXX-*, removed at the end (or by the
// next lab/bench run if this one is killed). Prints a markdown section for bench/RESULTS.md.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { exec } from "../src/system/exec.ts";
import { withBenchNet } from "./lib/bench-net.ts";
import { tsNode } from "./lib/paths.ts";
import { dateLine, loadLine, machineLine, report, requireRoot } from "./lib/report.ts";
import { fmtSummaryMs, markdownTable, summarize } from "./lib/stats.ts";
import { benchConfigYaml } from "./lib/uplink-config.ts";
import { buildUplinkTopology, type BenchRouter } from "./lib/uplink-topology.ts";

const UPLINKS = 32;
const { values } = parseArgs({
  options: { runs: { type: "string", default: "5" }, sticky: { type: "string", default: "1000" } },
  strict: true,
});
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 50) throw new Error("--runs must be 1..50");
const STICKY = Number(values.sticky);
if (!Number.isInteger(STICKY) || STICKY < 0 || STICKY > 60_000) throw new Error("--sticky must be 0..60000");

requireRoot("bench/uplinks-reload.ts");

const { say, print } = report();

await withBenchNet(async (net) => {
  const work = await net.tempDir();
  const env = { ...process.env, NFLB_STATE_DIR: join(work, "state") };
  const topo = await buildUplinkTopology(net, {
    routers: [{ role: "router", uplinks: UPLINKS }],
    client: false,
  });
  const router = topo.routers[0] as BenchRouter;
  // One rule of 10,000 prefixes, sticky (its maps are what a structural reload must carry).
  const yaml = (o: { weight1?: number; sticky?: string } = {}) => {
    const lines = benchConfigYaml({
      uplinks: router.uplinks,
      rules: { count: 1, prefixesPerRule: 10_000 },
    }).split("\n");
    // The first uplink's weight; the rule balances (no via) and remembers its choices.
    const w = lines.indexOf("    weight: 1");
    const via = lines.findIndex((l) => l.startsWith("    via: "));
    if (w < 0 || via < 0) throw new Error("unexpected bench config");
    lines[w] = `    weight: ${o.weight1 ?? 1}`;
    lines[via] = `    sticky: ${o.sticky ?? "30m"}`;
    return lines.join("\n");
  };
  const files = { config: yaml(), weights: yaml({ weight1: 2 }), structural: yaml({ sticky: "20m" }) };
  for (const [k, text] of Object.entries(files)) await writeFile(join(work, `${k}.yaml`), text);
  if (files.weights === files.config || files.structural === files.config)
    throw new Error("configs do not differ");

  const argv = tsNode("bench/lib/reload-pieces.ts", [
    ...Object.keys(files).flatMap((k) => [`--${k}`, join(work, `${k}.yaml`)]),
    "--runs",
    String(RUNS),
    "--sticky",
    String(STICKY),
  ]);
  const r = await exec(argv, { netns: router.ns, env, timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`reload-pieces exited ${r.code}: ${r.stderr.slice(-2000)}`);
  const res = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as {
    pieces: Record<string, number[]>;
    kinds: Record<string, string[]>;
    sticky: { before: number; after: number };
  };
  const med = (k: string) => summarize(res.pieces[k] ?? []).median;
  const rows = [
    ["baseline: the unchanged config reloaded", "baseline"],
    ["weight-only: one uplink's weight 1 ↔ 2", "weights"],
    ["structural: the sticky rule's timeout 30m ↔ 20m", "structural"],
  ].map(([label, k]) => [
    label ?? "",
    fmtSummaryMs(summarize(res.pieces[k ?? ""] ?? [])),
    `${(med(k ?? "") / med("baseline")).toFixed(2)}×`,
    [...new Set(res.kinds[k ?? ""] ?? [])].join(", ") || "none",
  ]);
  say(`### Reload: ${UPLINKS} uplinks, 1 sticky rule × 10,000 prefixes, weight-only vs structural`);
  say();
  say(`${dateLine()}; ${await machineLine()}; ${loadLine()} at start.`);
  say(
    `In-process reloads through the daemon's Reconciler and kernel operations (plan, diff, nft, routing, state file), ${RUNS} recorded runs after one warm-up, alternating two versions of the config; min / median / max in ms; ratio of medians to the baseline of the same run. ${STICKY} sticky elements in the map; after the structural reloads it held ${res.sticky.after} (before: ${res.sticky.before}).`,
  );
  say();
  say(markdownTable(["reload", "ms", "vs baseline", "applied as"], rows));
  say();
  say(`${loadLine()} at end.`);
});
print();
