import type { Config } from "./schema.ts";
import type { ConfigIssue } from "./issues.ts";
import { RULE_OFFSETS } from "./marks.ts";

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

/** Uplink i uses table table_base + 1 + i; table_base itself holds the router's own default route. */
export function ownedTables(c: Config): { from: number; to: number } {
  return { from: c.table_base, to: c.table_base + Object.keys(c.uplinks ?? {}).length };
}

export function ownedPriorities(c: Config): { from: number; to: number } {
  return { from: c.rule_priority_base, to: c.rule_priority_base + RULE_OFFSETS.span - 1 };
}

/** Room for `from ADDRESS` rules: one per address of an uplink, per family, before the guards. */
export const FROM_RULE_SLOTS = RULE_OFFSETS.fromGuard - RULE_OFFSETS.from;

export function checkOwnedRanges(c: Config): { errors: ConfigIssue[]; warnings: ConfigIssue[] } {
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const n = Object.keys(c.uplinks ?? {}).length;
  const t = ownedTables(c);
  const span = `tables ${t.from}..${t.to} (table_base and one per uplink)`;
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
  // fwmark rules sit at base + fwmark + i, below the `from` rules.
  const fwmarkRoom = RULE_OFFSETS.from - RULE_OFFSETS.fwmark;
  if (n > fwmarkRoom)
    errors.push({
      path: ["uplinks"],
      message: `${n} uplinks need more rule priorities than nflb's range has (${fwmarkRoom}): use fewer uplinks`,
    });
  return { errors, warnings };
}
