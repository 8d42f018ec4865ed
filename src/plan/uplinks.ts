import type { Config, RuleConfig } from "../config/schema.ts";
import { parseAddr, parsePrefix } from "../net/ip.ts";
import { markLayout, uplinkMark, type MarkLayout } from "../config/marks.ts";
import { maxSlot, slotUsable } from "../config/owned-ranges.ts";
import { assignSlots, type SlotAssignment } from "./uplink-ids.ts";
import { hashBuckets, rotationSlots, type Weighted } from "./split.ts";
import type { Facts, Health, PlannedRule, PlannedSplit, PlannedUplink, Target, UplinkPlan } from "./types.ts";

/** Table `table_base` carries the router's own default route; the uplink in slot k gets `table_base + k`. */
export const DEFAULT_TABLE_OFFSET = 0;

export function layoutOf(c: Config): MarkLayout {
  const l = markLayout(c.mark_mask);
  if ("error" in l) throw new Error(l.error); // unreachable after validation
  return l;
}

/** Every uplink up at its configured weight: what `apply` installs. */
export function allUp(c: Config): Health {
  return Object.fromEntries(Object.keys(c.uplinks ?? {}).map((n) => [n, { up: true }]));
}

/**
 * Config + health + system facts → the desired uplink data plane. Pure: the same inputs always
 * give the same plan, which is what makes `plan` trustworthy and re-applies no-ops.
 */
export function planUplinks(c: Config, health: Health, facts: Facts): UplinkPlan | null {
  if (!c.uplinks) return null;
  const layout = layoutOf(c);
  const slots = uplinkSlots(c, facts);
  const uplinks: PlannedUplink[] = Object.entries(c.uplinks).map(([name, u], index) => {
    const slot = slots[name] ?? 0;
    const gws = (u.gateway ?? []).map((g) => parseAddr(g)).filter((a) => a !== null);
    const h = health[name];
    const p: PlannedUplink = {
      name,
      index,
      slot,
      iface: u.interface,
      mark: uplinkMark(layout, slot),
      table: c.table_base + slot,
      nat: u.nat,
      addresses: facts.interfaces.get(u.interface)?.addresses ?? [],
      live: h?.up ?? false,
      weight: h?.weight ?? u.weight,
    };
    const gw4 = gws.find((g) => g.family === 4)?.text;
    const gw6 = gws.find((g) => g.family === 6)?.text;
    if (gw4) p.gw4 = gw4;
    if (gw6) p.gw6 = gw6;
    return p;
  });

  const byName = new Map(uplinks.map((u) => [u.name, u]));
  const primaryOrder = c.balance.primary ?? uplinks.map((u) => u.name);
  const firstLive = (names: string[], fam?: 4 | 6) =>
    names.map((n) => byName.get(n)).find((u) => u?.live && (fam === undefined || carries(u, fam)))?.name ??
    null;

  const sources = c.balance.sources?.map((s) => parsePrefix(s)).filter((p) => !("error" in p)) ?? null;
  const rules = c.rules.map((r, id) => planRule(r, id, (names) => firstLive(names)));

  return {
    layout,
    tableBase: c.table_base,
    ruleBase: c.rule_priority_base,
    uplinks,
    split: planSplit(c, uplinks),
    balanceFrom: c.balance.from ?? null,
    balanceSources: sources && {
      v4: sources.filter((p) => "family" in p && p.family === 4).map((p) => ("text" in p ? p.text : "")),
      v6: sources.filter((p) => "family" in p && p.family === 6).map((p) => ("text" in p ? p.text : "")),
    },
    rules,
    local: c.balance.local,
    primary4: firstLive(primaryOrder, 4),
    primary6: firstLive(primaryOrder, 6),
    // By slot, not YAML order: reordering the config moves no client (and a config written before
    // slots existed, whose slots follow its order, keeps its seed).
    hashSeed: seedOf(
      bySlot(uplinks)
        .map((u) => u.name)
        .join(","),
    ),
  };
}

/**
 * Each uplink's slot (src/plan/uplink-ids.ts): pins, then the slots in force (`facts.uplinkSlots`),
 * then the lowest free ones not held by conntrack. Without facts: pins, then config order.
 */
export function uplinkSlots(c: Config, facts: Facts): SlotAssignment {
  const ups = c.uplinks ?? {};
  const r = assignSlots({
    names: Object.keys(ups),
    pins: Object.fromEntries(Object.entries(ups).map(([n, u]) => [n, u.id])),
    previous: facts.uplinkSlots ?? {},
    held: new Set(facts.heldSlots ?? []),
    maxSlot: maxSlot(c),
    usable: (k) => slotUsable(c, k),
  });
  if ("error" in r) throw new Error(r.error); // the config's checks bound the uplinks to the slots
  return r.slots;
}

const bySlot = (ups: readonly PlannedUplink[]) => [...ups].sort((a, b) => a.slot - b.slot);

/** Whether traffic of this family can leave by the uplink: a gateway of that family, or a point-to-point device. */
export function carries(u: PlannedUplink, fam: 4 | 6): boolean {
  if (fam === 4) return u.gw4 !== undefined || (u.gw6 === undefined && hasFamily(u, 4));
  return u.gw6 !== undefined || (u.gw4 === undefined && hasFamily(u, 6));
}

function hasFamily(u: PlannedUplink, fam: 4 | 6): boolean {
  // A tunnel without a gateway carries a family when it has an address of it (or we know nothing yet).
  return u.addresses.length === 0 || u.addresses.some((a) => a.family === fam);
}

function planSplit(c: Config, uplinks: PlannedUplink[]): PlannedSplit | null {
  const method = c.balance.method;
  // In slot order: reordering the YAML changes no slot of the split (a reload of it is a no-op).
  const ordered = bySlot(uplinks);
  let pool: Weighted[] = ordered
    .filter((u) => u.live && u.weight > 0)
    .map((u) => ({ name: u.name, weight: u.weight }));
  // Weight-0 uplinks are backups: used, equally, only when every weighted uplink is down.
  if (pool.length === 0) pool = ordered.filter((u) => u.live).map((u) => ({ name: u.name, weight: 1 }));
  if (pool.length === 0) return null;
  if (method === "random" || method === "round-robin") {
    return { method, slots: rotationSlots(pool, method === "round-robin") };
  }
  // Dealt by slot, so the buckets follow names, not the YAML's order.
  const configured = ordered.map((u) => ({ name: u.name, weight: c.uplinks?.[u.name]?.weight ?? 0 }));
  const liveSet = new Set(pool.map((p) => p.name));
  return { method, slots: hashBuckets(configured, liveSet, pool) };
}

/**
 * A rule's prefixes by family, parsed once per loaded config: the daemon re-plans on every health
 * change, and 10,000 prefixes cost more to parse than the rest of the plan.
 */
const prefixMemo = new WeakMap<readonly string[], { v4: string[]; v6: string[] }>();

function prefixesByFamily(list: string[] | undefined): { v4: string[]; v6: string[] } {
  if (!list) return { v4: [], v6: [] };
  const known = prefixMemo.get(list);
  if (known) return known;
  const ps = list.map((s) => parsePrefix(s)).filter((p) => !("error" in p)) as {
    family: 4 | 6;
    text: string;
  }[];
  const out = {
    v4: ps.filter((p) => p.family === 4).map((p) => p.text),
    v6: ps.filter((p) => p.family === 6).map((p) => p.text),
  };
  prefixMemo.set(list, out);
  return out;
}

function planRule(r: RuleConfig, id: number, resolve: (names: string[]) => string | null): PlannedRule {
  const split = prefixesByFamily;
  const dst = split(r.destination);
  const src = split(r.source);
  let target: Target;
  if (r.via === "main") target = { kind: "main" };
  else if (r.via) {
    const up = resolve(r.via);
    // No uplink of the list is alive: balancing beats sending the connection into a dead link.
    target = up ? { kind: "uplink", uplink: up } : { kind: "balance" };
  } else target = { kind: "balance" };
  const out: PlannedRule = {
    id,
    name: r.name,
    dst4: dst.v4,
    dst6: dst.v6,
    src4: src.v4,
    src6: src.v6,
    hasDst: (r.destination?.length ?? 0) > 0,
    hasSrc: (r.source?.length ?? 0) > 0,
    target,
  };
  if (r.protocol) out.protocol = r.protocol;
  if (r.port !== undefined) {
    if (typeof r.port === "number") out.ports = [r.port];
    else if (Array.isArray(r.port)) out.ports = [...r.port];
    else {
      const [from, to] = r.port.split("-").map(Number);
      out.ports = { from: from ?? 0, to: to ?? 0 };
    }
  }
  if (r.sticky !== undefined) out.stickyMs = r.sticky;
  return out;
}

/** A stable hash seed per config so source-hash placement survives restarts. */
function seedOf(s: string): number {
  let h = 0x811c9dc5;
  for (const ch of s) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}
