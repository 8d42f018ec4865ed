import type { Desired } from "../plan/desired.ts";
import { diffOps, diffRouting, ownedRouting, type OwnedRange, type RoutingDiff } from "./diff-routing.ts";
import { applyRoutingOps, readAll, readOwned, withRollback } from "./routing-batch.ts";
import { systemIp, type IpPort } from "../system/iproute.ts";
import { nftApply } from "../system/nft.ts";
import { readSysctl, writeSysctl } from "../system/sysctl.ts";
import { loadState, saveState } from "../system/state.ts";
import { ownedState } from "./owned-state.ts";
import type { RoutingOp } from "../plan/routing.ts";

const isAddition = (o: RoutingOp) => o.op === "rule-add" || o.op === "route-replace";

export interface ApplyReport {
  nftChanged: boolean;
  routing: RoutingDiff;
  sysctls: { key: string; from: string | null; to: string }[];
  seconds: number;
}

/** What the kernel holds now of nflb's rules and routes (tagged with its protocol, inside the range). */
export async function readRouting(range: OwnedRange, ip: IpPort = systemIp) {
  return readOwned(ip, range);
}

/**
 * Install a desired state. Routing additions go in one `ip -batch` per family and are rolled back
 * if the nft transaction after them fails; the transaction itself is all-or-nothing. So a failed
 * apply leaves the previous data plane serving. There is no `nft -c` dry run first: it cost as
 * much as the transaction (nft parses and evaluates the whole script either way, ~80 ms with
 * 10,000 prefixes) and a refused transaction is undone anyway.
 */
export async function applyDesired(want: Desired, opts: { nftScript?: string } = {}): Promise<ApplyReport> {
  const t0 = performance.now();
  // A diff (a reload in place) may be empty: nothing for nft to do.
  const script = opts.nftScript ?? want.nft;
  const ip = systemIp;
  // The state file and the reads are independent: run them together (process start dominates
  // each). Everything is read, then filtered to nflb's own objects in its range.
  const [saved, kernel] = await Promise.all([loadState(), readAll(ip)]);
  const state = await ownedState(saved, kernel);

  const range = {
    priorities: want.routing.priorities,
    tables: want.routing.tables,
  };
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

  const before = ownedRouting(kernel, range);
  const diff = diffRouting(want.routing, before);
  state.tables = range.tables;
  state.priorities = range.priorities;
  // Each uplink's slot, so the next apply or start keeps them (names gone are dropped: what
  // conntrack still holds of them guards their marks; src/apply/uplink-slots.ts).
  if (want.uplinks) state.uplinkSlots = Object.fromEntries(want.uplinks.uplinks.map((u) => [u.name, u.slot]));
  else delete state.uplinkSlots;
  const current = new Map(
    await Promise.all(want.sysctls.map(async (s) => [s.key, await readSysctl(s.key)] as const)),
  );
  for (const s of want.sysctls) {
    const cur = current.get(s.key) ?? null;
    if (!(s.key in state.sysctls) && cur !== null) state.sysctls[s.key] = cur;
  }
  // Record ownership before changing anything: a crash midway must still be undoable by `down`.
  await saveState(state);

  // Additions first, in one batch per family (undone by itself if a line fails); then the nft
  // transaction, all-or-nothing; if that fails, the additions are undone too. What only the old
  // table used goes after the switch: killed at any point (kill -9, power), the host keeps a table
  // whose rules and routes are all there, whichever table that is.
  const ops = diffOps(diff, before);
  const undo = await applyRoutingOps(ip, ops.filter(isAddition), range, before);
  try {
    if (script) await nftApply(script);
  } catch (e) {
    throw await withRollback(e, undo());
  }
  await applyRoutingOps(
    ip,
    ops.filter((o) => !isAddition(o)),
    range,
    before,
  );

  const sysctls: ApplyReport["sysctls"] = [];
  for (const s of want.sysctls) {
    const cur = current.get(s.key) ?? null;
    if (cur !== s.value) {
      await writeSysctl(s.key, s.value);
      sysctls.push({ key: s.key, from: cur, to: s.value });
    }
  }
  return { nftChanged: script !== "", routing: diff, sysctls, seconds: (performance.now() - t0) / 1000 };
}

/** Only the routing part (the daemon moves the primary's default route without a full apply). */
export async function applyRoutingOnly(want: Desired, ip: IpPort = systemIp): Promise<RoutingDiff> {
  const before = await readOwned(ip, want.routing);
  const diff = diffRouting(want.routing, before);
  await applyRoutingOps(ip, diffOps(diff, before), want.routing, before);
  return diff;
}
