/**
 * Which slot each uplink holds. Slot k gives the uplink its identity in the kernel: mark
 * k << shift (inside mark_mask), route table table_base + k, and fwmark rule priority
 * rule_priority_base + 10 + k - 1. Established connections carry the mark in their conntrack
 * entry, so a slot must follow the uplink's name, never its position in the YAML: moving or adding
 * an uplink must not hand isp1's mark to another link.
 *
 * Pure: the caller reads the previous assignment (the state file, or the daemon's last apply) and
 * the marks conntrack holds, and passes them in.
 */
export interface SlotInputs {
  /** Uplink names, in config order (the order new names are given slots). */
  names: readonly string[];
  /** `uplinks.NAME.id`: explicit slots. Validated by the config (unique, usable). */
  pins: Readonly<Record<string, number | undefined>>;
  /** The assignment in force before (may name uplinks that are gone). */
  previous: Readonly<Record<string, number>>;
  /** Slots whose mark conntrack still holds entries with: not given to a new name while another slot is free. */
  held: ReadonlySet<number>;
  /** Highest slot, and whether a slot may be used at all (its table is not the kernel's or a tool's). */
  maxSlot: number;
  usable: (slot: number) => boolean;
}

export type SlotAssignment = Record<string, number>;

/**
 * Pins first; then every name keeps the slot it had; then new names, in config order, take the
 * lowest free slot that conntrack does not hold (and only if there is none, the lowest free one).
 */
export function assignSlots(i: SlotInputs): { slots: SlotAssignment } | { error: string } {
  const ok = (s: number | undefined): s is number =>
    s !== undefined && Number.isInteger(s) && s >= 1 && s <= i.maxSlot && i.usable(s);
  const out: SlotAssignment = {};
  const taken = new Set<number>();
  const give = (name: string, slot: number) => {
    out[name] = slot;
    taken.add(slot);
  };
  for (const n of i.names) {
    const pin = i.pins[n];
    if (ok(pin) && !taken.has(pin)) give(n, pin);
  }
  for (const n of i.names) {
    const was = i.previous[n];
    if (out[n] === undefined && ok(was) && !taken.has(was)) give(n, was);
  }
  let next = 1;
  for (const n of i.names) {
    if (out[n] !== undefined) continue;
    const slot = lowestFree(i, taken, next, true) ?? lowestFree(i, taken, 1, false);
    if (slot === null) return { error: `no free uplink slot for ${n} (${i.maxSlot} slots)` };
    give(n, slot);
    next = slot;
  }
  return { slots: out };
}

function lowestFree(i: SlotInputs, taken: Set<number>, from: number, skipHeld: boolean): number | null {
  for (let s = from; s <= i.maxSlot; s++)
    if (!taken.has(s) && i.usable(s) && !(skipHeld && i.held.has(s))) return s;
  return null;
}

/**
 * Slots whose connections must be forgotten: those of names that are gone, and the old slot of a
 * name that moved (a new pin took its slot, or it pinned another): its established connections
 * carry a mark that now names another uplink, or none.
 */
export function removedSlots(
  previous: Readonly<Record<string, number>>,
  now: SlotAssignment,
): [string, number][] {
  return Object.entries(previous).filter(([n, s]) => now[n] !== s);
}
