import type { RouteSpec, RuleSpec } from "../render/routes.ts";

/** Pure reconciliation: what to add and remove so that the kernel's rules/routes in our range equal the plan. */
export interface RoutingDiff {
  addRules: RuleSpec[];
  delRules: RuleSpec[];
  replaceRoutes: RouteSpec[];
  delRoutes: RouteSpec[];
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

export function diffRouting(
  want: { rules: RuleSpec[]; routes: RouteSpec[] },
  have: { rules: RuleSpec[]; routes: RouteSpec[] },
): RoutingDiff {
  const haveRules = new Set(have.rules.map(ruleKey));
  const wantRules = new Set(want.rules.map(ruleKey));
  const haveRoutes = new Set(have.routes.map(routeKey));
  const wantTables = new Set(want.routes.map((r) => `${r.family}|${r.table}`));
  return {
    addRules: want.rules.filter((r) => !haveRules.has(ruleKey(r))),
    delRules: have.rules.filter((r) => !wantRules.has(ruleKey(r))),
    replaceRoutes: want.routes.filter((r) => !haveRoutes.has(routeKey(r))),
    delRoutes: have.routes.filter((r) => !wantTables.has(`${r.family}|${r.table}`)),
  };
}

export function isEmptyDiff(d: RoutingDiff): boolean {
  return !d.addRules.length && !d.delRules.length && !d.replaceRoutes.length && !d.delRoutes.length;
}
