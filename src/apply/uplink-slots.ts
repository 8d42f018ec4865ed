import type { Config } from "../config/schema.ts";
import { slotOfMark } from "../config/marks.ts";
import type { Facts } from "../net/facts.ts";
import { layoutOf } from "../plan/uplinks.ts";
import { conntrackMarks } from "../system/conntrack-marks.ts";
import type { State } from "../system/state.ts";
import { loadOwnedState } from "./owned-state.ts";

export type SlotFacts = Pick<Facts, "uplinkSlots" | "heldSlots">;

/**
 * What planning needs to keep every uplink in its slot (src/plan/uplink-ids.ts): the slots the
 * state file recorded and, only when a name has none yet, the slots conntrack entries still hold
 * (a removed uplink's mark is not handed to a new one while its connections are there).
 */
export async function readSlotFacts(c: Config, state?: State): Promise<SlotFacts> {
  if (!c.uplinks) return {};
  const previous = (state ?? (await loadOwnedState())).uplinkSlots ?? {};
  return { uplinkSlots: previous, ...(await heldFor(c, previous)) };
}

/**
 * The held slots when the config has a name without a slot; nothing otherwise (no conntrack read).
 * Without any recorded slots (a first start, or after `nflb down` removed the state file) marks
 * left in conntrack are most likely this same config's, given by its order as before: they are
 * not held against it.
 */
export async function heldFor(c: Config, previous: Readonly<Record<string, number>>): Promise<SlotFacts> {
  if (Object.keys(previous).length === 0) return {};
  const fresh = Object.entries(c.uplinks ?? {}).some(([n, u]) => u.id === undefined && !(n in previous));
  if (!fresh) return {};
  const layout = layoutOf(c);
  // Without conntrack (a host that never ran nflb's data plane) nothing can be held.
  const marks = await conntrackMarks(layout.mask).catch(() => new Set<number>());
  const held = [...marks].map((m) => slotOfMark(layout, m)).filter((s) => s !== null);
  return { heldSlots: held };
}
