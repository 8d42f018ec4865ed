import { applyDesired, applyRoutingOnly } from "../apply/dataplane.ts";
import { FAMILY, TABLE } from "../nft/names.ts";
import { deleteConntrackByMark, purgeStickyMark, readStickyMaps } from "../system/conntrack-marks.ts";
import { heldFor, readSlotFacts } from "../apply/uplink-slots.ts";
import { readMaglevSeed } from "../apply/maglev-live.ts";
import { deleteBackendFlows } from "../system/conntrack.ts";
import { readInterfaces } from "../system/iproute.ts";
import { nftApply, readCounters, tableExists } from "../system/nft.ts";
import { NftSession } from "../system/nft-session.ts";
import { readServiceCounters } from "../system/service-counters.ts";
import type { DataplaneOps } from "./reconciler.ts";

/**
 * In-place transactions (a backend's change, a health flip) go through one long-lived `nft -i`
 * (src/system/nft-session.ts): ~10–20 ms less each than an `nft -f` that deletes anything.
 */
const session = new NftSession();

/** Starts the daemon's nft session while the daemon is still small (see NftSession.start). */
export function startNftSession(): void {
  session.start();
}

/** Ends the daemon's nft session (its stdin closing at exit would end it too). */
export function closeNftSession(): void {
  session.close();
}

/** The reconcile loop's kernel operations on this host (or the namespace the daemon runs in). */
export const kernelOps: DataplaneOps = {
  readFacts: async (o) => ({ interfaces: await readInterfaces(o), complete: true }),
  applyFull: async (d, nftScript) => {
    await applyDesired(d, nftScript !== undefined ? { nftScript } : {});
  },
  applyNft: async (script) => {
    if (!(await session.apply(script))) await nftApply(script);
  },
  applyRouting: async (d) => {
    await applyRoutingOnly(d);
  },
  tableExists: () => tableExists(FAMILY, TABLE),
  flushConntrack: deleteConntrackByMark,
  purgeSticky: purgeStickyMark,
  slotFacts: async (c, previous) =>
    previous ? { uplinkSlots: previous, ...(await heldFor(c, previous)) } : readSlotFacts(c),
  readSticky: readStickyMaps,
  servicesSeed: (c) => readMaglevSeed(c),
  deleteBackendFlows: (f, to) => deleteBackendFlows(f, to),
};

/** Named counters (uplinks) and the services' element counters, in one map. */
export const readNflbCounters = async () => {
  const [named, services] = await Promise.all([
    readCounters(FAMILY, TABLE),
    readServiceCounters(FAMILY, TABLE),
  ]);
  for (const [k, v] of services) named.set(k, v);
  return named;
};
