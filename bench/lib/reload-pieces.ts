// Runs INSIDE the router namespace (started by bench/uplinks-reload.ts through `ip netns exec`):
// times the daemon's reload path in-process — the Reconciler `nflb run` uses, with the real kernel
// operations — for three kinds of reload of the same config, alternating between two versions:
//
//   baseline:   the same config read again (nothing to change: routing read, state file written)
//   weights:    one uplink's weight toggled (an in-place diff: the split map's elements)
//   structural: the sticky rule's timeout toggled (the map's declaration changes: the table is
//               replaced, with the sticky maps' live elements carried over in the same transaction)
//
//   reload-pieces.ts --config FILE --weights FILE --structural FILE --runs N --sticky N
//
// Prints one JSON line: { pieces: { name: ms[] }, kinds: {...}, sticky: {...} }. Leaves nflb down.
import { parseArgs } from "node:util";
import { loadConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { allHealthy } from "../../src/plan/desired.ts";
import { Reconciler, type ReconcileInput } from "../../src/daemon/reconciler.ts";
import { kernelOps } from "../../src/daemon/dataplane-ops.ts";
import { silentLog, type Log } from "../../src/daemon/log.ts";
import { down } from "../../src/apply/down.ts";
import { listJson, nftApply } from "../../src/system/nft.ts";
import { repeat } from "./stats.ts";

const { values } = parseArgs({
  options: {
    config: { type: "string" },
    weights: { type: "string" },
    structural: { type: "string" },
    runs: { type: "string", default: "5" },
    sticky: { type: "string", default: "1000" },
  },
  strict: true,
});
const runs = Number(values.runs);
const stickyCount = Number(values.sticky);
if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error("--runs must be 1..50");
if (!Number.isInteger(stickyCount) || stickyCount < 0 || stickyCount > 60_000)
  throw new Error("--sticky 0..60000");
if (!values.config || !values.weights || !values.structural)
  throw new Error("--config, --weights, --structural");

const read = async (f: string) => (await loadConfig(f)).config;
const base = values.config;
let input: ReconcileInput;
const set = (c: Config) => (input = { config: c, health: allHealthy(c), probeDown: new Set() });
set(await read(base));
const kinds: Record<string, string[]> = {};
let current = "";
// How each reload was applied: "diff" (in place), or "replace" when the reconciler says the
// table changes shape.
let replaced = false;
const log: Log = {
  warn: silentLog.warn.bind(silentLog),
  error: silentLog.error.bind(silentLog),
  debug: silentLog.debug.bind(silentLog),
  info: ((obj: unknown, msg?: string) => {
    if (msg === "the table changes shape; replacing it") replaced = true;
  }) as Log["info"],
};
const r = new Reconciler(() => input, kernelOps, {
  log,
  onApply: () => {
    (kinds[current] ??= []).push(replaced ? "table replaced" : "in place (diff)");
    replaced = false;
  },
});
await down();
const first = await r.reconcile("start");
if (first.action !== "full") throw new Error(`start: ${first.action} ${first.error?.message ?? ""}`);

// Remembered sticky choices (one per client/destination pair, spread over the uplinks' marks).
if (stickyCount > 0) {
  const marks = r.last?.desired.uplinks?.uplinks.map((u) => u.mark) ?? [];
  const els = Array.from({ length: stickyCount }, (_, k) => {
    const mark = marks[k % marks.length] ?? 0x100;
    return `198.18.${(k >> 8) & 255}.${k & 255} . 203.0.113.10 : 0x${mark.toString(16)}`;
  });
  await nftApply(`add element inet nflb rule_0_sticky4 { ${els.join(", ")} }\n`);
}
const stickyNow = async () =>
  ((await listJson(["map", "inet", "nflb", "rule_0_sticky4"]))[0]?.map as { elem?: unknown[] } | undefined)
    ?.elem?.length ?? 0;

const pieces: Record<string, number[]> = {};
const measure = async (name: string, files: [string, string]) => {
  current = name;
  const configs = await Promise.all(files.map(read));
  let n = 0;
  pieces[name] = await repeat(
    runs,
    async () => {
      // Alternate, starting with the changed version (warm-up included): every run is a real
      // reload of that kind.
      set(configs[++n % 2] as Config);
      const res = await r.reconcile("reload");
      if (res.action === "failed") throw new Error(`${name}: ${res.error?.message ?? ""}`);
    },
    { warmup: 1 },
  );
};

const before = await stickyNow();
// Baseline: the same file read again (two Config objects of the same content, as a reload of an
// unchanged file gives).
await measure("baseline", [base, base]);
await measure("weights", [base, values.weights]);
set(await read(base));
await r.reconcile("reload");
await measure("structural", [base, values.structural]);
const after = await stickyNow();
await r.close();
await down();
process.stdout.write(JSON.stringify({ pieces, kinds, sticky: { before, after } }) + "\n");
