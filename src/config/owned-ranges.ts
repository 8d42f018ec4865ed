import type { Config } from "./schema.ts";
import type { ConfigIssue } from "./issues.ts";
import { markLayout, RULE_OFFSETS } from "./marks.ts";

// nflb owns a range of routing tables and one of rule priorities. These checks prove, from the
// config alone, that the ranges cannot reach the kernel's own tables or other tools' well-known
// ones, and cannot overflow.

/** Tables the kernel gives a meaning: 0 (unspecified), 253 default, 254 main, 255 local. */
export const RESERVED_TABLES: Record<number, string> = {
  0: "unspec",
  253: "default",
  254: "main",
  255: "local",
};

/** Tables well-known tools use by default: sharing one means each deletes the other's routes. */
export const TOOL_TABLES: Record<number, string> = {
  220: "strongSwan (charon installs its IPsec routes in table 220)",
  51820: "wg-quick (a WireGuard default route goes into table 51820)",
};

/** The highest table number: 2^32-1 is RT_TABLE_MAX, which `ip` refuses as a table id. */
export const MAX_TABLE = 2 ** 32 - 2;

/** `ip rule` priorities from 32766 on hold the main and default lookups. */
export const FIRST_SYSTEM_PRIORITY = 32766;

/** fwmark rules sit at base + fwmark + slot - 1, below the `from` rules: one per slot. */
export const FWMARK_SLOTS = RULE_OFFSETS.from - RULE_OFFSETS.fwmark;

/**
 * The highest slot an uplink may hold (src/plan/uplink-ids.ts): the mark layout's values and the
 * fwmark rules' room bound it.
 */
export function maxSlot(c: Config): number {
  const l = markLayout(c.mark_mask);
  return Math.min("error" in l ? 0 : l.maxUplinks, FWMARK_SLOTS);
}

/** Whether slot k's table (table_base + k) is free to use: not the kernel's, nor a well-known tool's. */
export function slotUsable(c: Config, slot: number): boolean {
  const table = c.table_base + slot;
  return !(table in RESERVED_TABLES) && !(table in TOOL_TABLES) && table <= MAX_TABLE;
}

/** The highest slot the config alone implies: one per uplink, or a higher pin. */
export function configSlots(c: Config): number {
  const ups = Object.values(c.uplinks ?? {});
  return Math.max(ups.length, ...ups.map((u) => u.id ?? 0));
}

/**
 * Uplink slot k uses table table_base + k; table_base itself holds the router's own default
 * route. A slot above the config's count (a pin, or a gap left by a removed uplink whose
 * connections still hold its mark) is only used when slotUsable says so.
 */
export function ownedTables(c: Config): { from: number; to: number } {
  return { from: c.table_base, to: c.table_base + configSlots(c) };
}

export function ownedPriorities(c: Config): { from: number; to: number } {
  return { from: c.rule_priority_base, to: c.rule_priority_base + RULE_OFFSETS.span - 1 };
}

/** Room for `from ADDRESS` rules: one per address of an uplink, per family, before the guards. */
export const FROM_RULE_SLOTS = RULE_OFFSETS.fromGuard - RULE_OFFSETS.from;

export function checkOwnedRanges(c: Config): { errors: ConfigIssue[]; warnings: ConfigIssue[] } {
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const n = configSlots(c);
  const t = ownedTables(c);
  const span = `tables ${t.from}..${t.to} (table_base and one per uplink slot)`;
  const reserved = Object.keys(RESERVED_TABLES)
    .map(Number)
    .filter((k) => k >= t.from && k <= t.to);
  if (reserved.length > 0) {
    const names = reserved.map((k) => `${k} (${RESERVED_TABLES[k]})`).join(", ");
    // The default base when the uplinks fit below strongSwan's table 220, else well above the kernel's.
    const fix = 200 + n < 220 ? 200 : 1000;
    errors.push({
      path: ["table_base"],
      message: `${span} would include the kernel's table ${names}: set table_base: ${fix}`,
    });
  }
  if (t.to > MAX_TABLE)
    errors.push({
      path: ["table_base"],
      message: `${span} run past the last table ${MAX_TABLE}: set a smaller table_base, like 1000`,
    });
  for (const [k, tool] of Object.entries(TOOL_TABLES)) {
    const table = Number(k);
    if (table >= t.from && table <= t.to)
      warnings.push({
        path: ["table_base"],
        message: `${span} include table ${table}, used by ${tool}: if that tool runs here, move table_base (like 1000)`,
      });
  }

  const p = ownedPriorities(c);
  if (p.to >= FIRST_SYSTEM_PRIORITY)
    errors.push({
      path: ["rule_priority_base"],
      message: `rule priorities ${p.from}..${p.to} reach ${FIRST_SYSTEM_PRIORITY} (the main table's rule): set rule_priority_base at most ${FIRST_SYSTEM_PRIORITY - RULE_OFFSETS.span}`,
    });
  if (n > FWMARK_SLOTS)
    errors.push({
      path: ["uplinks"],
      message: `${n} uplink slots need more rule priorities than nflb's range has (${FWMARK_SLOTS}): use fewer uplinks`,
    });
  return { errors, warnings };
}
