import type { Config, RuleConfig } from "../config/schema.ts";
import { uplinkPassiveOf } from "../config/limits.ts";
import { splitPrefixes } from "../net/ip.ts";
import { resolveGateways } from "../net/gateways.ts";
import { markLayout, uplinkMark, type MarkLayout } from "../config/marks.ts";
import { domainSetsPlan } from "./nft-domains.ts";
import { maxSlot, slotUsable } from "../config/owned-ranges.ts";
import { assignSlots, type SlotAssignment } from "./uplink-ids.ts";
import { hashBuckets, rotationSlots, type Weighted } from "./split.ts";
import { steerWeights } from "./steer-weights.ts";
import type { Facts, Health, PlannedRule, PlannedSplit, PlannedUplink, Target, UplinkPlan } from "./types.ts";

/** Table `table_base` carries the router's own default route; the uplink in slot k gets `table_base + k`. */
export const DEFAULT_TABLE_OFFSET = 0;

export function layoutOf(c: Config): MarkLayout {
  const l = markLayout(c.mark_mask);
  if ("error" in l) throw new Error(l.error); // unreachable after validation
  return l;
}

/** Every uplink up at its configured weight (metered ones out, overflow on the first): what `apply` installs. */
export function allUp(c: Config): Health {
  return steerWeights(c, Object.fromEntries(Object.keys(c.uplinks ?? {}).map((n) => [n, { up: true }])));
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
    const dev = facts.interfaces.get(u.interface);
    const gws = resolveGateways(u.gateway, dev && { iface: u.interface, ...dev });
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
      live4: false,
      live6: false,
      weight: h?.weight ?? u.weight,
    };
    if (gws.gw4) p.gw4 = gws.gw4;
    if (gws.gw6) p.gw6 = gws.gw6;
    if (gws.auto) p.gwAuto = true;
    if (gws.reason4) p.gwReason4 = gws.reason4;
    if (gws.reason6) p.gwReason6 = gws.reason6;
    if (!dev && facts.complete) p.absent = true;
    // A family leaves the split on its own: not carried (nothing can leave by it; `apply` plans
    // every uplink up), or its probes call it down.
    const down = h?.downFamilies ?? [];
    p.live4 = p.live && carries(p, 4) && !down.includes(4);
    p.live6 = p.live && carries(p, 6) && !down.includes(6);
    return p;
  });
  for (const fam of [4, 6] as const) {
    // The probes call this family down on every uplink that carries it: keep them all in its
    // split (fail-static, as for whole uplinks) rather than leave the family with no way out.
    const key = fam === 4 ? "live4" : "live6";
    if (uplinks.some((u) => u[key])) continue;
    for (const u of uplinks) if (u.live && carries(u, fam)) u[key] = true;
  }
  for (const u of uplinks) u.live = u.live4 || u.live6;

  const byName = new Map(uplinks.map((u) => [u.name, u]));
  const primaryOrder = c.balance.primary ?? uplinks.map((u) => u.name);
  const firstLive = (names: string[], fam: 4 | 6) =>
    names.map((n) => byName.get(n)).find((u) => (fam === 4 ? u?.live4 : u?.live6))?.name ?? null;

  const sources = c.balance.sources ? splitPrefixes(c.balance.sources) : null;
  // A family no uplink carries leaves by the main table whatever the rule says: its rules keep one
  // target (the other family's), so a single-family setup plans what it always did.
  const inUse = (fam: 4 | 6) => uplinks.some((u) => (fam === 4 ? u.live4 : u.live6));
  const resolve = (names: string[], fam: 4 | 6) =>
    firstLive(names, inUse(fam) || !inUse(fam === 4 ? 6 : 4) ? fam : fam === 4 ? 6 : 4);
  const rules = c.rules.map((r, id) => planRule(r, id, resolve));

  const plan: UplinkPlan = {
    layout,
    tableBase: c.table_base,
    ruleBase: c.rule_priority_base,
    uplinks,
    split4: planSplit(c, uplinks, 4),
    split6: planSplit(c, uplinks, 6),
    balanceFrom: c.balance.from ?? null,
    acceptLocal: c.balance.accept_local && (c.balance.from?.length ?? 0) > 0,
    balanceSources: sources && { v4: sources.v4, v6: sources.v6 },
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
  if (rules.some((r) => r.domains)) plan.domains = domainSetsPlan(c);
  // Opt-in (it hides events from every other listener); only while passive health runs, by the
  // daemon's own test (src/daemon/uplink-passive.ts): 2 uplinks or more, one with passive on.
  const ups = Object.values(c.uplinks);
  if (c.balance.conntrack_events === "minimal" && ups.length >= 2 && ups.some((u) => uplinkPassiveOf(u)))
    plan.passiveEvents = true;
  return plan;
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
  if (u.absent) return false;
  if (u.gwAuto) return (fam === 4 ? u.gw4 : u.gw6) !== undefined;
  if (fam === 4) return u.gw4 !== undefined || (u.gw6 === undefined && hasFamily(u, 4));
  return u.gw6 !== undefined || (u.gw4 === undefined && hasFamily(u, 6));
}

function hasFamily(u: PlannedUplink, fam: 4 | 6): boolean {
  // A tunnel without a gateway carries a family when it has an address of it (or we know nothing yet).
  return u.addresses.length === 0 || u.addresses.some((a) => a.family === fam);
}

/** One family's split over the uplinks live for it (each family fails over on its own). */
function planSplit(c: Config, uplinks: PlannedUplink[], fam: 4 | 6): PlannedSplit | null {
  // Overflow is a choice of weights (src/plan/steer-weights.ts), split at random among them.
  const method = c.balance.method === "overflow" ? "random" : c.balance.method;
  // In slot order: reordering the YAML changes no slot of the split (a reload of it is a no-op).
  const ordered = bySlot(uplinks);
  const live = (u: PlannedUplink) => (fam === 4 ? u.live4 : u.live6);
  let pool: Weighted[] = ordered
    .filter((u) => live(u) && u.weight > 0)
    .map((u) => ({ name: u.name, weight: u.weight }));
  // Weight-0 uplinks are backups: used, equally, only when every weighted uplink is down.
  if (pool.length === 0) pool = ordered.filter(live).map((u) => ({ name: u.name, weight: 1 }));
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
 * A rule's prefixes by family, parsed once per loaded config (shared with validation): the daemon
 * re-plans on every health change, and 10,000 prefixes cost more to parse than the rest of the plan.
 */
function prefixesByFamily(list: string[] | undefined): { v4: string[]; v6: string[] } {
  return list ? splitPrefixes(list) : { v4: [], v6: [] };
}

function planRule(
  r: RuleConfig,
  id: number,
  resolve: (names: string[], fam: 4 | 6) => string | null,
): PlannedRule {
  const split = prefixesByFamily;
  const dst = split(r.destination);
  const src = split(r.source);
  const targetOf = (fam: 4 | 6): Target => {
    if (r.via === "main") return { kind: "main" };
    if (!r.via) return { kind: "balance" };
    const up = resolve(r.via, fam);
    // No uplink of the list is alive: balancing beats sending the connection into a dead link.
    return up ? { kind: "uplink", uplink: up } : { kind: "balance" };
  };
  const target = targetOf(4);
  const target6 = targetOf(6);
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
  if (!sameTarget(target, target6)) out.target6 = target6;
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
  if (r.domains) out.domains = r.domains;
  return out;
}

function sameTarget(a: Target, b: Target): boolean {
  return a.kind === b.kind && (a.kind !== "uplink" || (b.kind === "uplink" && a.uplink === b.uplink));
}

/** A stable hash seed per config so source-hash placement survives restarts. */
function seedOf(s: string): number {
  let h = 0x811c9dc5;
  for (const ch of s) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}
