import { carries } from "./uplinks.ts";
import type { PlannedUplink, UplinkPlan } from "./types.ts";

/**
 * The routing protocol number nflb tags every rule (`protocol`) and route (`proto`) it installs
 * with: how `down` proves an object is nflb's even without a state file. Unassigned: the kernel's
 * linux/rtnetlink.h names 0–4, 8–18, 42, 99 and 186–192, FRR adds 193–198. Kept numeric (no
 * rt_protos entry); nflb reads with `ip -N` so a name an admin gives it changes nothing.
 */
export const ROUTE_PROTO = 110;

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

export { RULE_OFFSETS } from "../config/marks.ts";
import { RULE_OFFSETS } from "../config/marks.ts";

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
    // In slot order, so the `from` rules' priorities follow names too: reordering the YAML moves no rule.
    const ups = [...p.uplinks]
      .sort((a, b) => a.slot - b.slot)
      .filter((u) => carries(u, fam) && usesFamily(p, fam));
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
        priority: base + RULE_OFFSETS.fwmark + u.slot - 1,
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
    tables: { from: p.tableBase, to: p.tableBase + Math.max(0, ...p.uplinks.map((u) => u.slot)) },
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
    const live = ups.filter((u) => (fam === 4 ? u.live4 : u.live6) && u.weight > 0);
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

/**
 * One change to the kernel's policy routing, in the order it is applied. Every op knows its
 * inverse, so a batch that stops midway (`ip -batch` is not atomic) can be undone exactly.
 */
export type RoutingOp =
  | { op: "rule-add"; rule: RuleSpec }
  | { op: "rule-del"; rule: RuleSpec }
  /** `prev` is the route this replaces in the same table, if any (what the inverse puts back). */
  | { op: "route-replace"; route: RouteSpec; prev?: RouteSpec }
  | { op: "route-del"; route: RouteSpec };

export function inverseOp(o: RoutingOp): RoutingOp {
  switch (o.op) {
    case "rule-add":
      return { op: "rule-del", rule: o.rule };
    case "rule-del":
      return { op: "rule-add", rule: o.rule };
    case "route-replace":
      return o.prev
        ? { op: "route-replace", route: o.prev, prev: o.route }
        : { op: "route-del", route: o.route };
    case "route-del":
      return { op: "route-replace", route: o.route };
  }
}
