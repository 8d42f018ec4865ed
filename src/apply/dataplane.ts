import type { Desired } from "../plan/desired.ts";
import { diffOps, diffRouting, ownedRouting, type OwnedRange, type RoutingDiff } from "./diff-routing.ts";
import { applyRoutingOps, readOwned, withRollback } from "./routing-batch.ts";
import { readCurrent, type Current } from "./read-current.ts";
import { systemIp, type IpPort } from "../system/iproute.ts";
import { nftApply } from "../system/nft.ts";
import { liveTransaction } from "../nft/live.ts";
import { FAMILY, TABLE } from "../nft/names.ts";
import {
  isInterfaceKey,
  readSysctl,
  readSysctlSync,
  writeSysctl,
  writeSysctlSync,
} from "../system/sysctl.ts";
import { loadState, saveState } from "../system/state.ts";
import { ownedState } from "./owned-state.ts";
import type { RoutingOp } from "../plan/routing.ts";

const isAddition = (o: RoutingOp) => o.op === "rule-add" || o.op === "route-replace";

export interface ApplyReport {
  nftChanged: boolean;
  /**
   * What the transaction did to nflb's tables: written whole, brought in line object by object
   * (src/nft/live.ts), or nothing, because the kernel held them as wanted already.
   */
  nft: "replaced" | "updated" | "unchanged";
  routing: RoutingDiff;
  sysctls: { key: string; from: string | null; to: string }[];
  seconds: number;
}

/** What the kernel holds now of nflb's rules and routes (tagged with its protocol, inside the range). */
export async function readRouting(range: OwnedRange, ip: IpPort = systemIp) {
  return readOwned(ip, range);
}

// What apply reads first lives in a module of its own, which the CLI loads before the rest.
export { readCurrent, type Current } from "./read-current.ts";

/**
 * Install a desired state. Routing additions go in one `ip -batch` per family and are rolled back
 * if the nft transaction after them fails; the transaction itself is all-or-nothing. So a failed
 * apply leaves the previous data plane serving. There is no `nft -c` dry run first: it cost as
 * much as the transaction (nft parses and evaluates the whole script either way, ~80 ms with
 * 10,000 prefixes) and a refused transaction is undone anyway.
 */
export async function applyDesired(
  want: Desired,
  opts: { nftScript?: string; current?: Promise<Current> } = {},
): Promise<ApplyReport> {
  const t0 = performance.now();
  const ip = systemIp;
  const { state: saved, kernel, nft: live } = await (opts.current ?? readCurrent(ip).current);
  const state = await ownedState(saved, kernel, live && tablesOf(live));
  // A diff (a reload in place) may be empty: nothing for nft to do. Without one, what differs
  // from the live tables when apply read them, else the whole tables.
  const update = opts.nftScript === undefined && live ? liveTransaction(want.model, live) : null;

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
  // Synchronously: 65 keys in ~1 ms (readSysctlSync).
  const current = new Map(want.sysctls.map((s) => [s.key, readSysctlSync(s.key)] as const));
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
  const adding = applyRoutingOps(ip, ops.filter(isAddition), range, before);
  // The full script (~4 ms for 10,000 prefixes) is rendered while `ip` adds the rules and routes.
  let script = "";
  try {
    script = opts.nftScript ?? update ?? want.nft;
  } catch (e) {
    const undoAdding = await adding;
    throw await withRollback(e, undoAdding());
  }
  const undo = await adding;
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
    // An uplink's interface that is not there yet (a tunnel, PPP) has no settings to write.
    if (cur === null && isInterfaceKey(s.key)) continue;
    if (cur !== s.value) sysctls.push({ key: s.key, from: cur, to: s.value });
  }
  // The global ones first, in order (ip_forward, all/forwarding reset interfaces' values), then
  // each interface's; synchronously: 64 of them in under 1 ms (writeSysctlSync).
  for (const s of sysctls) if (!isInterfaceKey(s.key)) writeSysctlSync(s.key, s.to);
  for (const s of sysctls) if (isInterfaceKey(s.key)) writeSysctlSync(s.key, s.to);
  const nft = script === "" ? "unchanged" : update !== null ? "updated" : "replaced";
  return { nftChanged: script !== "", nft, routing: diff, sysctls, seconds: (performance.now() - t0) / 1000 };
}

/**
 * The tables of a live read that exist, as `nft list tables` names them ("FAMILY NAME"); undefined
 * when nflb's own table was not read (too big), so that ownedState asks nft itself.
 */
export function tablesOf(live: ReadonlyMap<string, string | null>): string[] | undefined {
  if (!live.has(`${FAMILY} ${TABLE}`)) return undefined;
  return [...live].filter(([, text]) => text !== null).map(([ref]) => ref);
}

/** Only the routing part (the daemon moves the primary's default route without a full apply). */
export async function applyRoutingOnly(want: Desired, ip: IpPort = systemIp): Promise<RoutingDiff> {
  const before = await readOwned(ip, want.routing);
  const diff = diffRouting(want.routing, before);
  await applyRoutingOps(ip, diffOps(diff, before), want.routing, before);
  await syncInterfaceSysctls(want);
  return diff;
}

/**
 * An uplink whose device appeared after the last full apply (a tunnel that connected, a PPP link)
 * gets its settings (loose rp_filter) on the next update, its old value recorded for `down` first.
 * Only interface keys: the global ones were written by the full apply and cannot have changed.
 */
export async function syncInterfaceSysctls(
  want: Desired,
): Promise<{ key: string; from: string; to: string }[]> {
  const keys = want.sysctls.filter((s) => isInterfaceKey(s.key));
  const current = await Promise.all(keys.map(async (s) => ({ s, cur: await readSysctl(s.key) })));
  const stale = current.filter(
    (c): c is { s: (typeof keys)[number]; cur: string } => c.cur !== null && c.cur !== c.s.value,
  );
  if (stale.length === 0) return [];
  const state = await loadState();
  let record = false;
  for (const { s, cur } of stale)
    if (!(s.key in state.sysctls)) {
      state.sysctls[s.key] = cur;
      record = true;
    }
  if (record) await saveState(state);
  for (const { s } of stale) await writeSysctl(s.key, s.value);
  return stale.map(({ s, cur }) => ({ key: s.key, from: cur, to: s.value }));
}
