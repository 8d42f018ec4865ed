// `nflb plan` and `nflb apply` wall time for 32 uplinks and 10,000 rule prefixes, end to end
// (process start included) and piece by piece (in-process), in a namespace with 32 veth uplinks.
//
//   node --import tsx bench/uplinks-apply.ts [--runs 5] [--only rules0,rules10x1000,rules1x10000] [--no-pieces]
//   (npm run bench:uplinks runs both uplink benches)
//
// Needs root. Everything happens in namespaces named nlXXXX-*, removed at the end (or by the
// next lab/bench run if this one is killed). Prints a markdown section for bench/RESULTS.md.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { exec } from "../src/system/exec.ts";
import { withBenchNet, type BenchNet } from "./lib/bench-net.ts";
import { NFLB_BIN, TSX_IMPORT, tsNode } from "./lib/paths.ts";
import { dateLine, loadLine, machineLine, report, requireRoot } from "./lib/report.ts";
import { fmtSummaryMs, markdownTable, repeat, summarize } from "./lib/stats.ts";
import { benchConfigYaml } from "./lib/uplink-config.ts";
import { buildUplinkTopology, type BenchRouter } from "./lib/uplink-topology.ts";

const UPLINKS = 32;
const CONFIGS = [
  { id: "rules0", label: "32 uplinks, no rules", rules: undefined },
  {
    id: "rules10x1000",
    label: "32 uplinks, 10 rules × 1,000 prefixes",
    rules: { count: 10, prefixesPerRule: 1000 },
  },
  {
    id: "rules1x10000",
    label: "32 uplinks, 1 rule × 10,000 prefixes",
    rules: { count: 1, prefixesPerRule: 10_000 },
  },
] as const;

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    only: { type: "string" },
    "no-pieces": { type: "boolean", default: false },
  },
  strict: true,
});
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 50) throw new Error("--runs must be 1..50");
const only = values.only?.split(",");
if (only?.some((id) => !CONFIGS.some((c) => c.id === id)))
  throw new Error(`--only takes ${CONFIGS.map((c) => c.id).join(",")}`);
const configs = CONFIGS.filter((c) => !only || only.includes(c.id));

requireRoot("bench/uplinks-apply.ts");

/** Where config files and nflb's state file go (not /run/nflb): the bench leaves nothing behind. */
let work = "";
let env: NodeJS.ProcessEnv = process.env;

async function inNs(net: BenchNet, argv: readonly string[]): Promise<string> {
  const r = await exec(argv, { netns: net.ns("router"), env, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr.trim().slice(-2000)}`);
  return r.stdout;
}

const { say, print } = report();

await withBenchNet(async (net) => {
  work = await net.tempDir();
  env = { ...process.env, NFLB_STATE_DIR: join(work, "state") };
  const t0 = performance.now();
  const topo = await buildUplinkTopology(net, {
    routers: [{ role: "router", uplinks: UPLINKS }],
    client: false,
  });
  const router = topo.routers[0] as BenchRouter;
  const nflb = (verb: string, file?: string) => [NFLB_BIN, verb, ...(file ? ["-c", file] : [])];
  const down = () => inNs(net, nflb("down"));
  say(`### Apply: ${UPLINKS} uplinks and up to 10,000 rule prefixes`);
  say();
  say(`${dateLine()}; ${await machineLine()}; ${loadLine()} at start.`);
  say(
    `Topology built in ${((performance.now() - t0) / 1000).toFixed(1)} s: router namespace with ${UPLINKS} veth uplinks, gateways in a second namespace. ${RUNS} recorded runs after one warm-up; min / median / max in ms.`,
  );
  say();

  const startup: string[][] = [];
  const start = async (label: string, argv: readonly string[], netns?: string) => {
    const ms = await repeat(
      RUNS,
      async () => {
        const r = await exec(argv, { ...(netns ? { netns } : {}), env, timeoutMs: 60_000 });
        if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
      },
      { warmup: 1 },
    );
    startup.push([label, fmtSummaryMs(summarize(ms))]);
  };
  await start("`node -e 0`", [process.execPath, "-e", "0"]);
  await start("`node --import tsx -e 0`", [process.execPath, "--import", TSX_IMPORT, "-e", "0"]);
  await start("`ip netns exec ROUTER true`", ["true"], router.ns);
  await start(
    "`ip netns exec ROUTER bin/nflb --help` (CLI module graph loaded)",
    [NFLB_BIN, "--help"],
    router.ns,
  );
  say("Process start, for reference (the CLI rows below include it):");
  say();
  say(markdownTable(["command", "ms"], startup));
  say();

  const cli: string[][] = [];
  const inproc = new Map<string, Map<string, string>>();
  const sizes: string[][] = [];
  for (const c of configs) {
    const file = join(work, `${c.id}.yaml`);
    const yaml = benchConfigYaml({
      uplinks: router.uplinks,
      ...(c.rules ? { rules: c.rules } : {}),
    });
    await writeFile(file, yaml);
    process.stderr.write(`-- ${c.label} (${(yaml.length / 1024).toFixed(0)} KiB YAML)\n`);
    await down();
    const plan = await repeat(RUNS, () => inNs(net, nflb("plan", file)), { warmup: 1 });
    // `plan` warmed the page cache and the config file: no warm-up needed for apply.
    const fresh = await repeat(RUNS, () => inNs(net, nflb("apply", file)), { between: down });
    await inNs(net, nflb("apply", file));
    const again = await repeat(RUNS, () => inNs(net, nflb("apply", file)));
    const downMs = await repeat(RUNS, down, { between: () => inNs(net, nflb("apply", file)) });
    // The same with a file changed before each run (a comment added): `plan` and `apply` read and
    // validate it again instead of taking the validated config from their cache (src/config/cached.ts).
    const edited = join(work, `${c.id}-edited.yaml`);
    let edits = 0;
    const edit = () => writeFile(edited, `${yaml}# edit ${++edits}\n`);
    await edit();
    const freshEdited = await repeat(RUNS, () => inNs(net, nflb("apply", edited)), {
      between: async () => {
        await down();
        await edit();
      },
    });
    await inNs(net, nflb("apply", edited));
    await edit();
    const againEdited = await repeat(RUNS, () => inNs(net, nflb("apply", edited)), { between: edit });
    await down();
    cli.push(
      [c.label, "`nflb plan`", fmtSummaryMs(summarize(plan))],
      [c.label, "`nflb apply` (fresh: after `nflb down`)", fmtSummaryMs(summarize(fresh))],
      [c.label, "`nflb apply` (again, same config)", fmtSummaryMs(summarize(again))],
      [c.label, "`nflb down` (after `nflb apply`)", fmtSummaryMs(summarize(downMs))],
      [
        c.label,
        "`nflb apply` (fresh, the file changed since the last run)",
        fmtSummaryMs(summarize(freshEdited)),
      ],
      [
        c.label,
        "`nflb apply` (again, the file changed since the last run)",
        fmtSummaryMs(summarize(againEdited)),
      ],
    );

    if (values["no-pieces"]) continue;
    const raw = await inNs(
      net,
      tsNode("bench/lib/apply-pieces.ts", ["--config", file, "--runs", String(RUNS)]),
    );
    const res = JSON.parse(raw.trim().split("\n").pop() ?? "{}") as {
      pieces: Record<string, number[]>;
      sizes: Record<string, number>;
    };
    for (const [name, ms] of Object.entries(res.pieces)) {
      const row = inproc.get(name) ?? new Map<string, string>();
      row.set(c.id, fmtSummaryMs(summarize(ms)));
      inproc.set(name, row);
    }
    const s = res.sizes;
    sizes.push([
      c.label,
      `${(yaml.length / 1024).toFixed(0)} KiB`,
      `${((s.nftBytes ?? 0) / 1024).toFixed(0)} KiB, ${s.nftLines} lines`,
      `${s.updateBytes} B`,
      `${s.ipRules} rules, ${s.routes} routes`,
    ]);
  }

  say("End to end: `ip netns exec ROUTER bin/nflb VERB -c FILE` (process start included):");
  say();
  say(markdownTable(["config", "command", "ms"], cli));
  say();
  if (!values["no-pieces"]) {
    say("In-process pieces (`bench/lib/apply-pieces.ts`, run inside the router namespace):");
    say();
    say(
      markdownTable(
        ["piece", ...configs.map((c) => c.label.replace(/^32 uplinks, /, ""))],
        [...inproc].map(([name, row]) => [name, ...configs.map((c) => row.get(c.id) ?? "")]),
      ),
    );
    say();
    say("Sizes:");
    say();
    say(markdownTable(["config", "YAML", "nft script", "health update script", "policy routing"], sizes));
    say();
  }
  say(`${loadLine()} at end.`);
});
print();
