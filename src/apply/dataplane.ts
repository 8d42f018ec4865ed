import type { Desired } from "../plan/desired.ts";
import type { RouteSpec, RuleSpec, Fam } from "../render/routes.ts";
import { diffRouting, isEmptyDiff, type RoutingDiff } from "./diff-routing.ts";
import * as ip from "../system/iproute.ts";
import { nftApply } from "../system/nft.ts";
import { readSysctl, writeSysctl } from "../system/sysctl.ts";
import { saveState } from "../system/state.ts";
import { loadOwnedState } from "./owned-state.ts";

export interface ApplyReport {
  nftChanged: boolean;
  routing: RoutingDiff;
  sysctls: { key: string; from: string | null; to: string }[];
  seconds: number;
}

/** What the kernel holds now in nflb's rule priorities and tables. */
export async function readRouting(range: {
  priorities: { from: number; to: number };
  tables: { from: number; to: number };
}) {
  const rules: RuleSpec[] = [];
  const routes: RouteSpec[] = [];
  for (const fam of [4, 6] as Fam[]) {
    rules.push(
      ...(await ip.readRules(fam)).filter(
        (r) => r.priority >= range.priorities.from && r.priority <= range.priorities.to,
      ),
    );
    for (let t = range.tables.from; t <= range.tables.to; t++)
      routes.push(...(await ip.readDefaultRoutes(fam, t)));
  }
  return { rules, routes };
}

async function applyRoutingDiff(d: RoutingDiff): Promise<void> {
  // Add before delete: a packet never finds neither the old nor the new rule.
  for (const r of d.addRules) await ip.addRule(r);
  for (const r of d.replaceRoutes) await ip.replaceRoute(r);
  for (const r of d.delRules) await ip.deleteRule(r);
  for (const r of d.delRoutes) await ip.deleteRoute(r);
}

/**
 * Install a desired state. The nft script is dry-run first; routing changes are rolled back if
 * anything after them fails; the nft transaction itself is all-or-nothing. So a failed apply
 * leaves the previous data plane serving.
 */
export async function applyDesired(want: Desired, opts: { nftScript?: string } = {}): Promise<ApplyReport> {
  const t0 = performance.now();
  // A diff (a reload in place) may be empty: nothing for nft to do.
  const script = opts.nftScript ?? want.nft;
  if (script) await nftApply(script, { check: true });

  const range = {
    priorities: want.routing.priorities,
    tables: want.routing.tables,
  };
  const state = await loadOwnedState();
  // Widen the range to what an earlier config owned, so shrinking a config removes its leftovers.
  if (state.tables)
    range.tables = {
      from: Math.min(range.tables.from, state.tables.from),
      to: Math.max(range.tables.to, state.tables.to),
    };
  if (state.priorities)
    range.priorities = {
      from: Math.min(range.priorities.from, state.priorities.from),
      to: Math.max(range.priorities.to, state.priorities.to),
    };

  const before = await readRouting(range);
  const diff = diffRouting(want.routing, before);
  state.tables = range.tables;
  state.priorities = range.priorities;
  for (const s of want.sysctls) {
    if (!(s.key in state.sysctls)) {
      const cur = await readSysctl(s.key);
      if (cur !== null) state.sysctls[s.key] = cur;
    }
  }
  // Record ownership before changing anything: a crash midway must still be undoable by `down`.
  await saveState(state);

  try {
    await applyRoutingDiff(diff);
    if (script) await nftApply(script);
  } catch (e) {
    if (!isEmptyDiff(diff))
      await applyRoutingDiff(diffRouting(before, await readRouting(range))).catch(() => undefined);
    throw e;
  }

  const sysctls: ApplyReport["sysctls"] = [];
  for (const s of want.sysctls) {
    const cur = await readSysctl(s.key);
    if (cur !== s.value) {
      await writeSysctl(s.key, s.value);
      sysctls.push({ key: s.key, from: cur, to: s.value });
    }
  }
  return { nftChanged: script !== "", routing: diff, sysctls, seconds: (performance.now() - t0) / 1000 };
}

/** Only the routing part (the daemon moves the primary's default route without a full apply). */
export async function applyRoutingOnly(want: Desired): Promise<RoutingDiff> {
  const before = await readRouting(want.routing);
  const diff = diffRouting(want.routing, before);
  await applyRoutingDiff(diff);
  return diff;
}
