// The daemon's health update on a large table: the nft transaction that the model diff sends
// (src/nft/diff.ts) when one of 32 uplinks goes down and another is reweighted, against the floor
// of any `nft -f` (an `add table` that changes nothing), with 0 and 10,000 rule prefixes.
//
//   node --import tsx bench/health-update.ts [--runs 11]
//
// Needs root. nft runs in a throw-away namespace (nlXXXX-lb); no interface is needed for the table
// to load. Prints a markdown section for bench/RESULTS.md.
import { parseArgs } from "node:util";
import { parseConfig } from "../src/config/load.ts";
import { diff } from "../src/nft/diff.ts";
import { allHealthy, desiredState, type HealthView } from "../src/plan/desired.ts";
import type { Facts } from "../src/plan/types.ts";
import { withBenchNet, type BenchNet } from "./lib/bench-net.ts";
import { dateLine, loadLine, machineLine, report, requireRoot } from "./lib/report.ts";
import { fmtSummaryMs, markdownTable, repeat, summarize } from "./lib/stats.ts";
import { benchConfigYaml } from "./lib/uplink-config.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "11" } }, strict: true });
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 101) throw new Error("--runs must be 1..101");
requireRoot("bench/health-update.ts");

const UPLINKS = Array.from({ length: 32 }, (_, i) => ({
  index: i + 1,
  iface: `wan${i + 1}`,
  peer: `up${i + 1}`,
  address: `100.64.${i + 1}.2`,
  gateway: `100.64.${i + 1}.1`,
}));
const facts: Facts = {
  interfaces: new Map(
    UPLINKS.map((u) => [u.iface, { name: u.iface, up: true, addresses: [{ family: 4, text: u.address }] }]),
  ),
};

const { say, print } = report();

await withBenchNet(async (net: BenchNet) => {
  await net.addNs("lb");
  const nft = async (script: string) => {
    const r = await net.exec("lb", ["nft", "-f", "-"], { input: script, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`nft: ${r.stderr.slice(0, 2000)}`);
  };
  say("### Health update: 32 uplinks, 0 and 10,000 rule prefixes");
  say();
  say(`${dateLine()}; ${await machineLine()}; ${loadLine()} at start.`);
  say(
    `\`ip netns exec … nft -f -\` wall time (process start included), ${RUNS} runs after one warm-up, alternating degraded ↔ healthy; min / median / max in ms.`,
  );
  say();
  const rows: string[][] = [];
  for (const rules of [undefined, { count: 1, prefixesPerRule: 10_000 }]) {
    const label = rules ? "1 rule × 10,000 prefixes" : "no rules";
    const c = parseConfig(benchConfigYaml({ uplinks: UPLINKS, ...(rules ? { rules } : {}) }));
    const healthy = allHealthy(c);
    const degraded: HealthView = {
      ...healthy,
      uplinks: { ...healthy.uplinks, isp2: { up: false }, isp3: { up: true, weight: 3 } },
    };
    const a = desiredState(c, healthy, facts);
    const b = desiredState(c, degraded, facts);
    const scripts = [diff(a.model, b.model).script, diff(b.model, a.model).script];
    await nft(a.nft);
    const floor = await repeat(RUNS, () => nft("add table inet nflb\n"), { warmup: 1 });
    const plan = await repeat(
      RUNS,
      async (i) => diff(a.model, desiredState(c, i % 2 ? healthy : degraded, facts).model),
      {
        warmup: 1,
      },
    );
    // Degraded first: each run changes the kernel's state (the warm-up leaves it degraded → healthy next).
    let k = 0;
    const update = await repeat(RUNS, () => nft(scripts[k++ % 2] as string), { warmup: 0 });
    rows.push(
      [label, "plan + diff (`desiredState` + `diff`, in-process)", fmtSummaryMs(summarize(plan))],
      [label, "`nft -f` the health update", fmtSummaryMs(summarize(update))],
      [label, "`nft -f` floor: `add table inet nflb` (changes nothing)", fmtSummaryMs(summarize(floor))],
      [
        label,
        "update script size",
        `${scripts[0]?.length ?? 0} B, ${(scripts[0] ?? "").split("\n").length - 1} lines`,
      ],
    );
    await net.exec("lb", ["nft", "delete", "table", "inet", "nflb"]);
  }
  say(markdownTable(["table", "step", "ms"], rows));
  say();
  say(`${loadLine()} at end.`);
});
print();
