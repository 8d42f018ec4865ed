// Services: time to install the whole table and to apply one backend's failure, for
// 100 services × 10 backends and 1 service × 1,000 backends, round-robin and maglev.
//
//   node --import tsx bench/services-apply.ts [--runs N]
//
// Needs root. nft runs inside a throw-away namespace (nlXXXX-lb), removed at the end. Prints a
// markdown section for bench/RESULTS.md.
import { parseArgs } from "node:util";
import { parseConfig } from "../src/config/load.ts";
import { allHealthy, desiredState } from "../src/plan/desired.ts";
import type { ServiceHealth } from "../src/plan/types.ts";
import { diff } from "../src/nft/diff.ts";
import { withBenchNet, type BenchNet } from "./lib/bench-net.ts";
import { dateLine, loadLine, machineLine, report, requireRoot } from "./lib/report.ts";
import { fmtSummaryMs, markdownTable, repeat, summarize } from "./lib/stats.ts";

const { values } = parseArgs({ options: { runs: { type: "string", default: "5" } }, strict: true });
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 50) throw new Error("--runs must be 1..50");
requireRoot("bench/services-apply.ts");

const CONFIGS = [
  { label: "100 services × 10 backends, round-robin", services: 100, backends: 10, scheduler: "round-robin" },
  { label: "100 services × 10 backends, maglev", services: 100, backends: 10, scheduler: "maglev" },
  { label: "1 service × 1,000 backends, round-robin", services: 1, backends: 1000, scheduler: "round-robin" },
  { label: "1 service × 1,000 backends, maglev", services: 1, backends: 1000, scheduler: "maglev" },
] as const;

/** Backend n (0-based, global) → an address in 198.18.0.0/15. */
const backendAddr = (n: number) => `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;

function configYaml(services: number, backends: number, scheduler: string): string {
  const lines = ["version: 1", "services:"];
  for (let s = 0; s < services; s++) {
    lines.push(
      `  s${s}:`,
      `    listen: 203.0.113.10:${1000 + s}`,
      `    scheduler: ${scheduler}`,
      "    backends:",
    );
    for (let b = 0; b < backends; b++) lines.push(`      - { address: ${backendAddr(s * backends + b)}:80 }`);
  }
  return lines.join("\n") + "\n";
}

const { say, print } = report();

await withBenchNet(async (net: BenchNet) => {
  await net.addNs("lb");
  const nft = async (script: string) => {
    const r = await net.exec("lb", ["nft", "-f", "-"], { input: script, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`nft: ${r.stderr.slice(0, 2000)}`);
  };
  const dropTable = () => net.exec("lb", ["nft", "delete", "table", "inet", "nflb"]);

  say("### Apply: 100 services × 10 backends and 1 service × 1,000 backends");
  say();
  say(`${dateLine()}; ${await machineLine()}; ${loadLine()} at start.`);
  say(
    `nft runs in a throw-away namespace (\`ip netns exec … nft -f -\`, process start included). ${RUNS} recorded runs after one warm-up; min / median / max in ms. "One backend down" is the in-place update a reconcile loop applies: re-plan every service, diff the new model against the applied one (src/nft/diff.ts).`,
  );
  say();
  const rows: string[][] = [];
  const sizes: string[][] = [];
  for (const c of CONFIGS) {
    process.stderr.write(`-- ${c.label}\n`);
    const config = parseConfig(configYaml(c.services, c.backends, c.scheduler));
    const facts = { interfaces: new Map() };
    const healthy = allHealthy(config);
    const firstBackend = config.services?.s0?.backends[0]?.address ?? "";
    const failed: ServiceHealth = { s0: { [firstBackend]: { up: false } } };
    const plan = await repeat(RUNS, async () => desiredState(config, healthy, facts), { warmup: 1 });
    const full = desiredState(config, healthy, facts);
    const fresh = await repeat(RUNS, () => nft(full.nft), { warmup: 1, between: dropTable });
    await nft(full.nft);
    const again = await repeat(RUNS, () => nft(full.nft), { warmup: 1 });
    const down = desiredState(config, { ...healthy, services: failed }, facts);
    let update = "";
    const renderUpd = await repeat(
      RUNS,
      async () => {
        update = diff(full.model, desiredState(config, { ...healthy, services: failed }, facts).model).script;
      },
      { warmup: 1 },
    );
    const restore = diff(down.model, full.model).script;
    // Alternate down and up so every run changes the kernel's state.
    const applyUpd = await repeat(RUNS, (i) => nft(i % 2 === 0 || i < 0 ? update : restore), {
      warmup: 1,
      between: async () => undefined,
    });
    await dropTable();
    rows.push(
      [
        c.label,
        "plan the whole model (`desiredState`; its script is rendered only when used)",
        fmtSummaryMs(summarize(plan)),
      ],
      [c.label, "`nft -f` whole table, first load", fmtSummaryMs(summarize(fresh))],
      [c.label, "`nft -f` whole table, replacing itself", fmtSummaryMs(summarize(again))],
      [
        c.label,
        "one backend down: `desiredState` + `diff` (against the applied model)",
        fmtSummaryMs(summarize(renderUpd)),
      ],
      [c.label, "one backend down: `nft -f` the update", fmtSummaryMs(summarize(applyUpd))],
    );
    sizes.push([
      c.label,
      `${(full.nft.length / 1024).toFixed(0)} KiB, ${full.nft.split("\n").length} lines`,
      `${update.length} B, ${update.trim().split("\n").length} lines`,
    ]);
  }
  say(markdownTable(["config", "step", "ms"], rows));
  say();
  say("Sizes:");
  say();
  say(markdownTable(["config", "whole table", "one-backend update"], sizes));
  say();
  say(`${loadLine()} at end.`);
});
print();
