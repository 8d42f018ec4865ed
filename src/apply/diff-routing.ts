import { ROUTE_PROTO, type RouteSpec, type RoutingOp, type RuleSpec } from "../plan/routing.ts";
import type { KernelRouting } from "../system/iproute.ts";

/** Pure reconciliation: what to add and remove so that the kernel's rules/routes in our range equal the plan. */
export interface RoutingDiff {
  addRules: RuleSpec[];
  delRules: RuleSpec[];
  replaceRoutes: RouteSpec[];
  delRoutes: RouteSpec[];
}

export interface RoutingState {
  rules: RuleSpec[];
  routes: RouteSpec[];
}

export interface OwnedRange {
  priorities: { from: number; to: number };
  tables: { from: number; to: number };
}

export const ruleKey = (r: RuleSpec) =>
  [
    r.family,
    r.priority,
    r.from ?? "all",
    r.fwmark ? `${r.fwmark.value}/${r.fwmark.mask}` : "-",
    r.table,
    r.suppressPrefixlength ?? "-",
  ].join("|");

export const routeKey = (r: RouteSpec) =>
  [r.family, r.table, ...r.nexthops.map((h) => `${h.via ?? "-"}@${h.dev}*${h.weight ?? "-"}`)].join("|");

const tableKey = (r: RouteSpec) => `${r.family}|${r.table}`;

const inRange = (n: number, r: { from: number; to: number }) => n >= r.from && n <= r.to;

/**
 * nflb's objects among everything the kernel holds: tagged with nflb's protocol number and inside
 * its ranges. Another tool's rule at one of our priorities, or its route in one of our tables
 * (strongSwan's table 220 is inside the default range), is not ours and is never touched.
 */
export function ownedRouting(
  k: KernelRouting,
  range: OwnedRange,
): RoutingState & { otherRoutes: RouteSpec[] } {
  const rules: RuleSpec[] = [];
  for (const { proto, ...rule } of k.rules)
    if (proto === ROUTE_PROTO && inRange(rule.priority, range.priorities)) rules.push(rule);
  const routes: RouteSpec[] = [];
  const otherRoutes: RouteSpec[] = [];
  for (const r of k.routes) {
    if (!r.spec || !inRange(r.table, range.tables)) continue;
    (r.proto === ROUTE_PROTO ? routes : otherRoutes).push(r.spec);
  }
  return { rules, routes, otherRoutes };
}

export function diffRouting(want: RoutingState, have: RoutingState): RoutingDiff {
  const haveRules = new Set(have.rules.map(ruleKey));
  const wantRules = new Set(want.rules.map(ruleKey));
  const haveRoutes = new Set(have.routes.map(routeKey));
  const wantTables = new Set(want.routes.map(tableKey));
  return {
    addRules: want.rules.filter((r) => !haveRules.has(ruleKey(r))),
    delRules: have.rules.filter((r) => !wantRules.has(ruleKey(r))),
    replaceRoutes: want.routes.filter((r) => !haveRoutes.has(routeKey(r))),
    delRoutes: have.routes.filter((r) => !wantTables.has(tableKey(r))),
  };
}

export function isEmptyDiff(d: RoutingDiff): boolean {
  return !d.addRules.length && !d.delRules.length && !d.replaceRoutes.length && !d.delRoutes.length;
}

/**
 * The diff as ordered ops. Adds before deletes, so a packet never finds neither the old nor the
 * new rule. Each route replace remembers the default route it overwrites in that table (ours, or
 * one someone else put there), so undoing it puts that route back.
 */
export function diffOps(d: RoutingDiff, have: RoutingState & { otherRoutes?: RouteSpec[] }): RoutingOp[] {
  const prev = new Map<string, RouteSpec>();
  for (const r of [...(have.otherRoutes ?? []), ...have.routes]) prev.set(tableKey(r), r);
  return [
    ...d.addRules.map((rule): RoutingOp => ({ op: "rule-add", rule })),
    ...d.replaceRoutes.map((route): RoutingOp => {
      const p = prev.get(tableKey(route));
      return p ? { op: "route-replace", route, prev: p } : { op: "route-replace", route };
    }),
    ...d.delRules.map((rule): RoutingOp => ({ op: "rule-del", rule })),
    ...d.delRoutes.map((route): RoutingOp => ({ op: "route-del", route })),
  ];
}
