import { carries } from "../plan/uplinks.ts";
import type { PlannedUplink, UplinkPlan } from "../plan/types.ts";

export type Fam = 4 | 6;

export interface Nexthop {
  via?: string;
  dev: string;
  weight?: number;
}

/** A default route in one of nflb's tables (nflb installs nothing else there). */
export interface RouteSpec {
  family: Fam;
  table: number;
  nexthops: Nexthop[];
}

export interface RuleSpec {
  family: Fam;
  priority: number;
  /** The table to look up, or "unreachable": the lookup ends here with an error (`ip rule … unreachable`). */
  table: number | "main" | "unreachable";
  fwmark?: { value: number; mask: number };
  from?: string;
  suppressPrefixlength?: number;
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

export interface RoutingPlan {
  rules: RuleSpec[];
  routes: RouteSpec[];
  /** nflb's range, so reconciliation and `down` touch nothing outside it. */
  tables: { from: number; to: number };
  priorities: { from: number; to: number };
}

export function planRouting(p: UplinkPlan): RoutingPlan {
  const rules: RuleSpec[] = [];
  const routes: RouteSpec[] = [];
  const base = p.ruleBase;
  for (const fam of [4, 6] as const) {
    const ups = p.uplinks.filter((u) => carries(u, fam) && usesFamily(p, fam));
    if (ups.length === 0) continue;
    // Connected and LAN routes of the main table beat every uplink table (main without its default).
    rules.push({
      family: fam,
      priority: base + RULE_OFFSETS.mainSuppress,
      table: "main",
      suppressPrefixlength: 0,
    });
    rules.push({
      family: fam,
      priority: base + RULE_OFFSETS.mainMark,
      table: "main",
      fwmark: { value: p.layout.main, mask: p.layout.mask },
    });
    for (const u of ups) {
      rules.push({
        family: fam,
        priority: base + RULE_OFFSETS.fwmark + u.index,
        table: u.table,
        fwmark: { value: u.mark, mask: p.layout.mask },
      });
      routes.push({ family: fam, table: u.table, nexthops: [hop(u, fam)] });
    }
    let k = 0;
    for (const u of ups) {
      for (const a of u.addresses.filter((a) => a.family === fam)) {
        // Sockets bound to an uplink's address (services on the router, probes) leave by that uplink,
        // and by no other: when its table has no route (the link is administratively down, which
        // flushes its routes), the guard ends the lookup instead of letting it fall through to
        // another uplink's default route. tcp/http/dns probes can only bind an address, not a device.
        rules.push({ family: fam, priority: base + RULE_OFFSETS.from + k, table: u.table, from: a.text });
        rules.push({
          family: fam,
          priority: base + RULE_OFFSETS.fromGuard + k,
          table: "unreachable",
          from: a.text,
        });
        k++;
      }
    }
    rules.push({ family: fam, priority: base + RULE_OFFSETS.defaultTable, table: p.tableBase });
    const def = defaultRoute(p, ups, fam);
    if (def) routes.push(def);
  }
  return {
    rules,
    routes,
    tables: { from: p.tableBase, to: p.tableBase + p.uplinks.length },
    priorities: { from: base, to: base + RULE_OFFSETS.span - 1 },
  };
}

function usesFamily(p: UplinkPlan, fam: Fam): boolean {
  return p.uplinks.some(
    (u) => (fam === 4 ? u.gw4 : u.gw6) !== undefined || u.addresses.some((a) => a.family === fam),
  );
}

function hop(u: PlannedUplink, fam: Fam): Nexthop {
  const via = fam === 4 ? u.gw4 : u.gw6;
  return via ? { via, dev: u.iface } : { dev: u.iface };
}

/** The router's own unbound traffic: the primary's default route, or a weighted multipath over live uplinks. */
function defaultRoute(p: UplinkPlan, ups: PlannedUplink[], fam: Fam): RouteSpec | null {
  if (p.local === "balance") {
    const live = ups.filter((u) => u.live && u.weight > 0);
    if (live.length > 1)
      return {
        family: fam,
        table: p.tableBase,
        nexthops: live.map((u) => ({ ...hop(u, fam), weight: u.weight })),
      };
    if (live[0]) return { family: fam, table: p.tableBase, nexthops: [hop(live[0], fam)] };
  }
  const name = fam === 4 ? p.primary4 : p.primary6;
  const u = ups.find((x) => x.name === name);
  return u ? { family: fam, table: p.tableBase, nexthops: [hop(u, fam)] } : null;
}

/** `ip` arguments (after `ip -4|-6`) that install a rule; also its identity for diffing. */
export function ruleArgs(r: RuleSpec): string[] {
  const a = ["rule", "add", "priority", String(r.priority)];
  if (r.from) a.push("from", r.from);
  if (r.fwmark) a.push("fwmark", `0x${r.fwmark.value.toString(16)}/0x${r.fwmark.mask.toString(16)}`);
  if (r.table === "unreachable") a.push("unreachable");
  else a.push("lookup", String(r.table));
  if (r.suppressPrefixlength !== undefined) a.push("suppress_prefixlength", String(r.suppressPrefixlength));
  return a;
}

export function routeArgs(r: RouteSpec, verb: "replace" | "del" = "replace"): string[] {
  const a = ["route", verb, "default"];
  if (r.nexthops.length === 1 && r.nexthops[0]?.weight === undefined) {
    const h = r.nexthops[0];
    if (h?.via) a.push("via", h.via);
    a.push("dev", h?.dev ?? "");
  } else {
    for (const h of r.nexthops) {
      a.push("nexthop");
      if (h.via) a.push("via", h.via);
      a.push("dev", h.dev, "weight", String(h.weight ?? 1));
    }
  }
  a.push("table", String(r.table));
  return a;
}

/** Human-readable commands for `nflb plan`. */
export function renderRouting(r: RoutingPlan): string {
  return [
    ...r.rules.map((x) => `ip -${x.family} ${ruleArgs(x).join(" ")}`),
    ...r.routes.map((x) => `ip -${x.family} ${routeArgs(x).join(" ")}`),
  ].join("\n");
}
