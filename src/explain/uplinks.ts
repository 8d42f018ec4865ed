import type { Addr } from "../net/ip.ts";
import type { Trace } from "../nft/ruleset/trace.ts";
import { carries } from "../plan/uplinks.ts";
import type { PlannedUplink, UplinkPlan } from "../plan/types.ts";
import type { Query } from "./packet.ts";
import { stepLine } from "./trace-packet.ts";

/**
 * Which uplink a new connection gets: the mark the traced walk of nflb's table leaves on the
 * packet (see trace-packet.ts), and for the router's own or unmarked traffic the policy routing
 * of src/render/routes.ts. Pure.
 */
export interface Share {
  name: string;
  share: number;
}

export type UplinkOutcome =
  | { kind: "uplink"; uplink: string }
  | { kind: "spread"; method: "random" | "round-robin" | "multipath"; shares: Share[]; rotation?: string[] }
  | { kind: "main" }
  | { kind: "local" }
  | { kind: "drop" };

export interface UplinkAnswer {
  /** The rule that matched, if one did. */
  rule: string | null;
  outcome: UplinkOutcome;
  /** Each decision on the way, in the kernel's order, for people. */
  trace: string[];
}

export interface UplinkContext {
  /** The router's own addresses (when known): delivered locally, and the router's own sources. */
  localAddresses: readonly Addr[];
  /** Whether the trace ran over the kernel's own table (sticky memory included). */
  live: boolean;
  /** Domain rules holding the destination, as the daemon answered them (undefined: not asked). */
  domains?: readonly { rule: string; domain: string; left_s: number }[];
}

type Pick = { kind: "uplink"; uplink: string } | { kind: "main" } | { kind: "drop" } | { kind: "none" };

export function explainUplinks(p: UplinkPlan, q: Query, outcomes: Trace[], ctx: UplinkContext): UplinkAnswer {
  const first = outcomes[0];
  const trace = (first?.steps ?? []).map(stepLine);
  if (q.local || ctx.localAddresses.some((l) => l.family === q.src.family && l.text === q.src.text))
    trace.unshift(
      `${q.src.text} is the router's own address: its own traffic leaves by the output path, where rules and balance do not apply`,
    );
  const ruleId = first?.steps.map((s) => /^rule_(\d+)$/.exec(s.chain)?.[1]).find((x) => x !== undefined);
  const rule = ruleId === undefined ? null : (p.rules.find((r) => r.id === Number(ruleId)) ?? null);
  if (rule) trace.push(`rule ${rule.name} matches (first match wins)`);
  if (rule?.domains) {
    const line = domainLine(rule.name, q, first?.steps ?? [], ctx.domains);
    if (line) trace.push(line);
  }
  if (rule?.stickyMs !== undefined) {
    const hit = first?.steps.some(
      (s) =>
        s.chain === `rule_${rule.id}` &&
        s.effects.some((e) => e.startsWith("ct mark set")) &&
        /map @rule_\d+_sticky/.test(s.rule),
    );
    if (hit) trace.push("sticky: the kernel remembers an uplink for this source+destination pair");
    else if (ctx.live)
      trace.push("sticky: nothing remembered (or the remembered uplink is down): the pair chooses");
    else
      trace.push(
        "sticky: a pair seen before keeps its uplink (the kernel's memory could not be read: run on the router as root); a new pair chooses",
      );
  }

  const picks = outcomes.map((t) => ({ pick: pickOf(p, t), share: t.share }));
  const kinds = new Set(picks.map((x) => (x.pick.kind === "uplink" ? `u:${x.pick.uplink}` : x.pick.kind)));
  const one = picks[0]?.pick ?? { kind: "none" };
  if (kinds.size === 1) {
    if (one.kind === "uplink") return { rule: rule?.name ?? null, outcome: one, trace };
    if (one.kind === "main") {
      trace.push("the main routing table decides (mark of `via: main`)");
      return { rule: rule?.name ?? null, outcome: { kind: "main" }, trace };
    }
    if (one.kind === "drop") {
      trace.push(`dropped in ${first?.droppedIn ?? "?"}: no uplink is up`);
      return { rule: rule?.name ?? null, outcome: { kind: "drop" }, trace };
    }
    if (isLocalDst(q, ctx.localAddresses)) {
      trace.push(
        `${q.dst.text} is the router's own, broadcast or multicast: delivered locally, not balanced`,
      );
      return { rule: null, outcome: { kind: "local" }, trace };
    }
    return { rule: null, ...routed(p, q, trace) };
  }
  const choice = first?.choices[0];
  const names = picks.map((x) => (x.pick.kind === "uplink" ? x.pick.uplink : x.pick.kind));
  const shares = sharesOf(names.map((name, i) => ({ name, share: picks[i]?.share ?? 0 })));
  if (choice?.expr.startsWith("numgen random")) {
    trace.push(`${choice.expr} picks each uplink with its share of the ${choice.of} slots`);
    return { rule: rule?.name ?? null, outcome: { kind: "spread", method: "random", shares }, trace };
  }
  trace.push(
    `${choice?.expr ?? "numgen inc"} walks the weighted rotation; the connection gets the next uplink in it`,
  );
  return {
    rule: rule?.name ?? null,
    outcome: { kind: "spread", method: "round-robin", shares, rotation: names },
    trace,
  };
}

/**
 * Why a domain rule took the destination: "203.0.113.7 matches rule netflix via example.com, 41 s
 * left" (the DNS set), or an open connection's keep set.
 */
function domainLine(
  name: string,
  q: Query,
  steps: readonly { chain: string; rule: string }[],
  held: UplinkContext["domains"],
): string | null {
  const hit = steps.find((s) => s.chain === "decide" && s.rule.includes(`@dom_${name}_`));
  if (!hit) return null;
  const dst = q.dst.text;
  const h = held?.find((x) => x.rule === name);
  if (hit.rule.includes(`@dom_${name}_keep`))
    return `${dst} matches rule ${name}: connections to it are open (kept until dns.keep after their last packet)${h ? `; answered for ${h.domain}, ${h.left_s} s left` : ""}`;
  if (h) return `${dst} matches rule ${name} via ${h.domain}, ${h.left_s} s left`;
  return `${dst} matches rule ${name} through its DNS set${held === undefined ? " (ask the running daemon for the name and the time left)" : ""}`;
}

/** The uplink a traced packet's mark selects (policy routing's fwmark rules). */
function pickOf(p: UplinkPlan, t: Trace): Pick {
  if (t.verdict === "drop") return { kind: "drop" };
  const m = t.mark & p.layout.mask;
  if (m === 0) return { kind: "none" };
  if (m === p.layout.main) return { kind: "main" };
  const u = p.uplinks.find((x) => x.mark === m);
  return u ? { kind: "uplink", uplink: u.name } : { kind: "none" };
}

function isLocalDst(q: Query, local: readonly Addr[]): boolean {
  if (local.some((l) => l.family === q.dst.family && l.text === q.dst.text)) return true;
  if (q.dst.family === 4)
    return q.dst.text === "255.255.255.255" || Number(q.dst.text.split(".")[0]) >> 4 === 14;
  return q.dst.text.toLowerCase().startsWith("ff");
}

/** Not decided by nflb's chains: policy routing sends it by nflb's default table (or the main one). */
export function routed(
  p: UplinkPlan,
  q: Query,
  trace: string[],
): { outcome: UplinkOutcome; trace: string[] } {
  const fam = q.src.family;
  const bound = p.uplinks.find((u) => u.addresses.some((a) => a.family === fam && a.text === q.src.text));
  if (bound) {
    trace.push(
      `${q.src.text} is ${bound.name}'s address: \`ip rule from ${q.src.text} lookup ${bound.table}\` sends it by ${bound.name}`,
    );
    return { outcome: { kind: "uplink", uplink: bound.name }, trace };
  }
  trace.push(
    "no uplink mark: connected and other specific routes of the main table come first (ip rule suppress_prefixlength 0)",
  );
  const ups = p.uplinks.filter((u) => carries(u, fam));
  if (p.local === "balance") {
    const live = ups.filter((u) => (fam === 4 ? u.live4 : u.live6) && u.weight > 0);
    if (live.length > 1) {
      trace.push(
        `balance.local: balance: a weighted multipath route in table ${p.tableBase}; the kernel hashes each flow onto one nexthop`,
      );
      return { outcome: { kind: "spread", method: "multipath", shares: weightShares(live) }, trace };
    }
    if (live[0]) {
      trace.push(`balance.local: balance, and only ${live[0].name} is up`);
      return { outcome: { kind: "uplink", uplink: live[0].name }, trace };
    }
  }
  const primary = fam === 4 ? p.primary4 : p.primary6;
  if (primary) {
    trace.push(
      `the default route of table ${p.tableBase} goes by the primary: ${primary} (first up in balance.primary)`,
    );
    return { outcome: { kind: "uplink", uplink: primary }, trace };
  }
  trace.push(`no uplink is up for IPv${fam}: the main table's default route decides`);
  return { outcome: { kind: "main" }, trace };
}

/** Outcomes' shares summed by name, in order of first appearance (k of n equal outcomes: exactly k/n). */
export function sharesOf(items: readonly Share[]): Share[] {
  const equal = items.every((i) => i.share === items[0]?.share);
  const out = new Map<string, number>();
  for (const i of items) out.set(i.name, (out.get(i.name) ?? 0) + (equal ? 1 : i.share));
  return [...out].map(([name, share]) => ({ name, share: equal ? share / items.length : share }));
}

function weightShares(ups: PlannedUplink[]): Share[] {
  const total = ups.reduce((s, u) => s + u.weight, 0);
  return ups.map((u) => ({ name: u.name, share: u.weight / total }));
}
