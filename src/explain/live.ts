import type { Config } from "../config/schema.ts";
import type { StatusJson } from "../daemon/status.ts";
import type { HealthView } from "../plan/desired.ts";
import type { BackendHealth } from "../plan/types.ts";
import { STICKY_SEED } from "../plan/nft-uplinks.ts";
import { nftJhash } from "./jhash.ts";
import { addrBytes, concatKey, type Query } from "./packet.ts";

/**
 * Turning what the running system says into the planner's inputs, for `nflb explain`. Pure: the
 * CLI fetches the daemon's status and lists the kernel's maps, this module only reads them.
 */

/** The daemon's `/api/v1/status` → the health the planner needs to compute the same split. */
export function healthFromStatus(c: Config, s: StatusJson): HealthView {
  const view: HealthView = { uplinks: {}, services: {} };
  for (const name of Object.keys(c.uplinks ?? {})) {
    const u = s.uplinks.find((x) => x.name === name);
    // An uplink the daemon does not report (a config newer than the daemon's) counts as up.
    if (!u) view.uplinks[name] = { up: true };
    else if (u.state === "up") view.uplinks[name] = { up: true, weight: u.effective_weight ?? u.weight };
    else view.uplinks[name] = { up: false };
  }
  for (const [name, svc] of Object.entries(c.services ?? {})) {
    const reported = s.services.find((x) => x.name === name);
    const out: Record<string, BackendHealth> = {};
    for (const b of svc.backends) {
      const r = reported?.backends.find((x) => x.address === b.address);
      if (!r) continue;
      out[b.address] = {
        up: r.state !== "down",
        weight: r.state === "draining" ? 0 : r.weight,
        connections: r.connections ?? 0,
      };
    }
    view.services[name] = out;
  }
  return view;
}

/** One line about the health used, e.g. "isp1 up, isp2 down (disabled)". */
export function statusSummary(s: StatusJson): string {
  return s.uplinks.map((u) => `${u.name} ${u.state}`).join(", ");
}

/** The key a sticky rule's IPv6 map uses for a pair (a 32-bit hash: see src/plan/nft-uplinks.ts). */
export function stickyKey6(q: Query): number {
  return nftJhash(concatKey(addrBytes(q.src), addrBytes(q.dst)), 0xffffffff, STICKY_SEED);
}

/**
 * The mark a sticky map (`nft -j list map inet nflb rule_N_stickyF`, metainfo removed) holds for
 * this query's pair; null when it holds none.
 */
export function stickyMarkOf(items: readonly Record<string, unknown>[], q: Query): number | null {
  const map = items.find((i) => "map" in i)?.map as { elem?: unknown[] } | undefined;
  const want6 = q.src.family === 6 ? stickyKey6(q) : null;
  for (const e of map?.elem ?? []) {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[1] !== "number") continue;
    const key = (e[0] as { elem?: { val?: unknown } } | undefined)?.elem?.val ?? e[0];
    if (want6 !== null) {
      if (key === want6) return e[1];
      continue;
    }
    const pair = (key as { concat?: unknown[] } | undefined)?.concat;
    if (pair && pair[0] === q.src.text && pair[1] === q.dst.text) return e[1];
  }
  return null;
}
