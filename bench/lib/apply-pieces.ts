// Runs INSIDE the router namespace (started by bench/uplinks-apply.ts through `ip netns exec`):
// times the pieces of `nflb apply` in-process, so the reader sees where the CLI's time goes.
//
//   apply-pieces.ts --config FILE --runs N
//
// Prints one JSON line: { pieces: { name: ms[] }, sizes: {...} }. Leaves nflb's data plane down.
import { parseArgs } from "node:util";
import { loadConfig } from "../../src/config/load.ts";
import { readFacts } from "../../src/cli/load.ts";
import { allHealthy, desiredState, type HealthView } from "../../src/plan/desired.ts";
import { nftApply } from "../../src/system/nft.ts";
import { NftSession } from "../../src/system/nft-session.ts";
import { diff } from "../../src/nft/diff.ts";
import type { Ruleset } from "../../src/nft/model.ts";
import { applyDesired, readCurrent, readRouting } from "../../src/apply/dataplane.ts";
import { systemIp } from "../../src/system/iproute.ts";
import { down } from "../../src/apply/down.ts";
import type { Config } from "../../src/config/schema.ts";
import { repeat } from "./stats.ts";

const { values } = parseArgs({
  options: { config: { type: "string" }, runs: { type: "string", default: "5" } },
  strict: true,
});
if (!values.config) throw new Error("--config FILE is required");
const file = values.config;
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new Error("--runs must be 1..50");

const pieces: Record<string, number[]> = {};
const measure = async (
  name: string,
  fn: (i: number) => Promise<unknown>,
  between?: () => Promise<unknown>,
) => {
  pieces[name] = await repeat(runs, fn, { warmup: 1, ...(between ? { between } : {}) });
};

/** The health change the daemon's reconcile loop would apply: one uplink down, another reweighted. */
function degraded(c: Config): HealthView {
  const view = allHealthy(c);
  const names = Object.keys(view.uplinks);
  if (names[1]) view.uplinks[names[1]] = { up: false };
  if (names[2]) view.uplinks[names[2]] = { up: true, weight: 3 };
  return view;
}

const loaded = (await loadConfig(file)).config;
const facts = await readFacts();
const want = desiredState(loaded, allHealthy(loaded), facts);

await measure("parse + validate (read file, YAML, zod, cross-checks)", () => loadConfig(file));
await measure("read interfaces (ip -j link/addr)", () => readFacts());
await measure("plan + render (desiredState)", async () => desiredState(loaded, allHealthy(loaded), facts));
await down();
await measure("nft -c -f (dry run of the full table)", () => nftApply(want.nft, { check: true }));
await measure("nft -f full table, first load", () => nftApply(want.nft), down);
await nftApply(want.nft);
await measure("nft -f full table, replacing itself", () => nftApply(want.nft));
await measure("read routing state (ip rule/route, both families)", () => readRouting(want.routing));
await measure("applyDesired, fresh (after down)", () => applyDesired(want), down);
await applyDesired(want);
// Without the tables' listing applyDesired replaces the table whole; `nflb apply` reads the
// listing (beside the config's parse) and sends only what differs: nothing, here.
await measure("applyDesired, nothing to change, no listing (the whole table replaced)", () =>
  applyDesired(want),
);
await measure(
  "read current (state file, ip rule/route, nft list of nflb's tables)",
  () => readCurrent(systemIp, { nft: true }).current,
);
await measure("applyDesired, nothing to change, with the listing (as `nflb apply`)", () =>
  applyDesired(want, { current: readCurrent(systemIp, { nft: true }).current }),
);
// The same, the listing read before each run (as when it was read beside the config's parse).
const readBefore = () => readCurrent(systemIp, { nft: true }).current;
let before = await readBefore();
await measure(
  "applyDesired, nothing to change, the listing read before",
  () => applyDesired(want, { current: Promise.resolve(before) }),
  async () => {
    before = await readBefore();
  },
);

const views = [degraded(loaded), allHealthy(loaded)];
const models = views.map((v) => desiredState(loaded, v, facts).model);
await measure("health update: plan + diff", (i) =>
  Promise.resolve(
    diff(
      models[(Math.abs(i) + 1) % 2] as Ruleset,
      desiredState(loaded, views[Math.abs(i) % 2] as HealthView, facts).model,
    ),
  ),
);
// Alternate: degraded → healthy → degraded, each the diff from the state before.
const updates = [
  diff(models[1] as Ruleset, models[0] as Ruleset).script,
  diff(models[0] as Ruleset, models[1] as Ruleset).script,
];
await measure("health update: nft -f update script", (i) => nftApply(updates[Math.abs(i) % 2] as string));
// The daemon sends the same update through its long-lived `nft -i` session (src/system/nft-session.ts):
// no exec, and no wait for the kernel's destroy work when a process's netlink socket closes.
await nftApply(want.nft);
const session = new NftSession();
session.start();
let k = 0;
await measure("health update: the same through the daemon's nft -i session", async () => {
  if (!(await session.apply(updates[k++ % 2] as string))) throw new Error("no nft -i session");
});
session.close();
await down();

const sizes = {
  nftBytes: want.nft.length,
  nftLines: want.nft.split("\n").length,
  updateBytes: updates[0]?.length ?? 0,
  ipRules: want.routing.rules.length,
  routes: want.routing.routes.length,
};
process.stdout.write(JSON.stringify({ pieces, sizes }) + "\n");
