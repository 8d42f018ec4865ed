import { applyDesired, applyRoutingOnly } from "../apply/dataplane.ts";
import { FAMILY, TABLE } from "../nft/names.ts";
import { deleteConntrackByMark, purgeStickyMark, readStickyMaps } from "../system/conntrack-marks.ts";
import { heldFor, readSlotFacts } from "../apply/uplink-slots.ts";
import { deleteBackendFlows } from "../system/conntrack.ts";
import { readInterfaces } from "../system/iproute.ts";
import { nftApply, readCounters, tableExists } from "../system/nft.ts";
import type { DataplaneOps } from "./reconciler.ts";

/** The reconcile loop's kernel operations on this host (or the namespace the daemon runs in). */
export const kernelOps: DataplaneOps = {
  readFacts: async () => ({ interfaces: await readInterfaces() }),
  applyFull: async (d, nftScript) => {
    await applyDesired(d, nftScript !== undefined ? { nftScript } : {});
  },
  applyNft: (script) => nftApply(script),
  applyRouting: async (d) => {
    await applyRoutingOnly(d);
  },
  tableExists: () => tableExists(FAMILY, TABLE),
  flushConntrack: deleteConntrackByMark,
  purgeSticky: purgeStickyMark,
  slotFacts: async (c, previous) =>
    previous ? { uplinkSlots: previous, ...(await heldFor(c, previous)) } : readSlotFacts(c),
  readSticky: readStickyMaps,
  deleteBackendFlows: (f, to) => deleteBackendFlows(f, to),
};

export const readNflbCounters = () => readCounters(FAMILY, TABLE);
