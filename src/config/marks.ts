/**
 * nflb owns only the bits of `mark_mask` in both the packet mark and the conntrack mark.
 * Inside the mask, value k<<shift (k = 1..max) names the uplink in slot k and the all-ones value is
 * reserved for "leave it to the main table" (`via: main`).
 */
export interface MarkLayout {
  mask: number;
  shift: number;
  maxUplinks: number;
  main: number;
}

export function markLayout(mask: number): MarkLayout | { error: string } {
  if (mask === 0) return { error: "mark_mask must not be 0" };
  const shift = Math.log2(mask & -mask);
  const width = Math.log2((mask >>> shift) + 1);
  if (!Number.isInteger(width))
    return { error: `mark_mask 0x${mask.toString(16)} must be one contiguous run of bits` };
  if (width < 2) return { error: "mark_mask needs at least 2 bits" };
  const values = 2 ** width - 1;
  return { mask: mask >>> 0, shift, maxUplinks: values - 1, main: mask >>> 0 };
}

/** The mark of the uplink in slot k (1..maxUplinks). */
export function uplinkMark(layout: MarkLayout, slot: number): number {
  return (slot * 2 ** layout.shift) >>> 0;
}

/** The slot a mark names under the layout, or null for 0 and the `via: main` value. */
export function slotOfMark(layout: MarkLayout, mark: number): number | null {
  const v = ((mark & layout.mask) >>> 0) / 2 ** layout.shift;
  return v >= 1 && v <= layout.maxUplinks ? v : null;
}

export function hex(n: number): string {
  return "0x" + (n >>> 0).toString(16);
}

/** Offsets from rule_priority_base; gaps leave room for an admin's own rules between ours. */
export const RULE_OFFSETS = {
  mainSuppress: 0,
  mainMark: 1,
  fwmark: 10,
  from: 500,
  /** After each `from ADDR lookup TABLE`: `from ADDR unreachable`, so nothing falls through. */
  fromGuard: 700,
  defaultTable: 900,
  span: 1000,
} as const;
