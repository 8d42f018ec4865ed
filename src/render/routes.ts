import {
  ROUTE_PROTO,
  type Fam,
  type RouteSpec,
  type RoutingOp,
  type RoutingPlan,
  type RuleSpec,
} from "../plan/routing.ts";

/**
 * Policy routing as `ip` text: one line per op, the same words on the command line (`nflb plan`)
 * and in `ip -batch -` (apply). Every rule and route carries nflb's protocol number, which is how
 * `down` tells nflb's objects from anyone else's.
 */

/** `ip` arguments (after `ip -4|-6`) for a rule; `del` names the same rule, ours only. */
export function ruleArgs(r: RuleSpec, verb: "add" | "del" = "add"): string[] {
  const a = ["rule", verb, "priority", String(r.priority)];
  if (r.from) a.push("from", r.from);
  if (r.fwmark) a.push("fwmark", `0x${r.fwmark.value.toString(16)}/0x${r.fwmark.mask.toString(16)}`);
  if (r.table === "unreachable") a.push("unreachable");
  else a.push("lookup", String(r.table));
  if (r.suppressPrefixlength !== undefined) a.push("suppress_prefixlength", String(r.suppressPrefixlength));
  a.push("protocol", String(ROUTE_PROTO));
  return a;
}

/**
 * `ip` arguments for the default route of one of nflb's tables. `table` and `proto` come before
 * the nexthops: after a `nexthop` list iproute2 accepts nothing else. `del` matches our proto only.
 */
export function routeArgs(r: RouteSpec, verb: "replace" | "del" = "replace"): string[] {
  const a = ["route", verb, "default", "table", String(r.table), "proto", String(ROUTE_PROTO)];
  if (verb === "del") return a;
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
  return a;
}

export function opFamily(o: RoutingOp): Fam {
  return "rule" in o ? o.rule.family : o.route.family;
}

export function opArgs(o: RoutingOp): string[] {
  switch (o.op) {
    case "rule-add":
      return ruleArgs(o.rule, "add");
    case "rule-del":
      return ruleArgs(o.rule, "del");
    case "route-replace":
      return routeArgs(o.route, "replace");
    case "route-del":
      return routeArgs(o.route, "del");
  }
}

/**
 * Words are interface names, addresses and numbers (validated by the config), so no quoting is
 * needed; a word that could split a line or a command anyway is refused rather than sent.
 */
export function opLine(o: RoutingOp): string {
  const args = opArgs(o);
  const bad = args.find((w) => w === "" || /[\s"'\\#]/.test(w));
  if (bad !== undefined) throw new Error(`refusing ip batch word ${JSON.stringify(bad)}`);
  return args.join(" ");
}

/** The `ip -batch -` input for one family: the ops of that family, in order, one per line. */
export function batchText(ops: readonly RoutingOp[], fam: Fam): string {
  const lines = ops.filter((o) => opFamily(o) === fam).map(opLine);
  return lines.length ? lines.join("\n") + "\n" : "";
}

/** Human-readable commands for `nflb plan`. */
export function renderRouting(r: RoutingPlan): string {
  return [
    ...r.rules.map((x) => `ip -${x.family} ${ruleArgs(x).join(" ")}`),
    ...r.routes.map((x) => `ip -${x.family} ${routeArgs(x).join(" ")}`),
  ].join("\n");
}
