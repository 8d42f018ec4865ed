import type { Config } from "../config/schema.ts";
import { formatNftDuration } from "../config/duration.ts";
import type { Addr } from "../net/ip.ts";
import { carries } from "../plan/uplinks.ts";
import type { PlannedRule, PlannedUplink, UplinkPlan } from "../plan/types.ts";
import { hex } from "../nft/text.ts";
import { nftJhash } from "./jhash.ts";
import { addrBytes, concatKey, inAny, isMulticastOrBroadcast, type Query } from "./packet.ts";

/**
 * Which uplink a new connection gets, walking the same decisions as the kernel (see
 * src/plan/nft-uplinks.ts): `inbound` for connections arriving on an uplink, then the `decide`
 * chain (balance.from / sources exclusions, local destinations, rules in order, balance), and for
 * the router's own or unbalanced traffic the policy routing of src/render/routes.ts. Pure.
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
  /**
   * What a sticky rule remembers for this pair, read from the kernel: rule id → the uplink's mark,
   * null when the kernel remembers nothing. A rule missing from the map: not known.
   */
  sticky?: ReadonlyMap<number, number | null>;
}

export function explainUplinks(c: Config, p: UplinkPlan, q: Query, ctx: UplinkContext): UplinkAnswer {
  const trace: string[] = [];
  const fam = q.src.family;
  const isLocal = (a: Addr) => ctx.localAddresses.some((l) => l.family === a.family && l.text === a.text);

  if (q.local || isLocal(q.src)) {
    trace.push(
      `${q.src.text} is the router's own address: its own traffic leaves by the output path, where rules and balance do not apply`,
    );
    return { rule: null, ...routed(p, q, trace) };
  }

  const inbound = q.iif === undefined ? undefined : p.uplinks.find((u) => u.iface === q.iif);
  if (inbound) {
    trace.push(
      `arrives on ${inbound.iface}, uplink ${inbound.name}: a connection that comes in by an uplink is answered by the same uplink`,
    );
    return { rule: null, outcome: { kind: "uplink", uplink: inbound.name }, trace };
  }

  if (p.balanceFrom) {
    if (q.iif === undefined) {
      trace.push(
        `assumed to arrive on a balanced interface (balance.from: ${p.balanceFrom.join(", ")}); --iif tells otherwise`,
      );
    } else if (!p.balanceFrom.includes(q.iif)) {
      trace.push(`arrives on ${q.iif}, not in balance.from (${p.balanceFrom.join(", ")}): not balanced`);
      return { rule: null, ...routed(p, q, trace) };
    } else trace.push(`arrives on ${q.iif}, in balance.from`);
  }
  if (p.balanceSources) {
    const list = fam === 4 ? p.balanceSources.v4 : p.balanceSources.v6;
    if (!inAny(q.src, list)) {
      trace.push(`${q.src.text} is not in balance.sources (${listOrNone(list)}): not balanced`);
      return { rule: null, ...routed(p, q, trace) };
    }
    trace.push(`${q.src.text} is in balance.sources`);
  }
  if (isLocal(q.dst) || isMulticastOrBroadcast(q.dst)) {
    trace.push(`${q.dst.text} is the router's own, broadcast or multicast: delivered locally, not balanced`);
    return { rule: null, outcome: { kind: "local" }, trace };
  }

  for (const r of p.rules) {
    const m = matchRule(r, q);
    if (m !== true) {
      trace.push(`rule ${r.name}: ${m}`);
      continue;
    }
    trace.push(`rule ${r.name}: matches (first match wins)`);
    return { rule: r.name, ...ruleOutcome(c, p, r, q, ctx, trace) };
  }
  if (p.rules.length === 0) trace.push("no rules");
  return { rule: null, outcome: balance(p, q, trace), trace };
}

/** Not decided by nflb's chains: policy routing sends it by nflb's default table (or the main one). */
function routed(p: UplinkPlan, q: Query, trace: string[]): { outcome: UplinkOutcome; trace: string[] } {
  const fam = q.src.family;
  const bound = p.uplinks.find((u) => u.addresses.some((a) => a.family === fam && a.text === q.src.text));
  if (bound) {
    trace.push(
      `${q.src.text} is ${bound.name}'s address: \`ip rule from ${q.src.text} lookup ${bound.table}\` sends it by ${bound.name}`,
    );
    return { outcome: { kind: "uplink", uplink: bound.name }, trace };
  }
  trace.push(
    "connected and other specific routes of the main table come first (ip rule suppress_prefixlength 0)",
  );
  const ups = p.uplinks.filter((u) => carries(u, fam));
  if (p.local === "balance") {
    const live = ups.filter((u) => u.live && u.weight > 0);
    if (live.length > 1) {
      trace.push(
        `balance.local: balance: a weighted multipath route in table ${p.tableBase}; the kernel hashes each flow onto one nexthop`,
      );
      return { outcome: { kind: "spread", method: "multipath", shares: sharesOf(live) }, trace };
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

/** true, or why the rule does not match this query. */
export function matchRule(r: PlannedRule, q: Query): true | string {
  const fam = q.dst.family;
  const dst = fam === 4 ? r.dst4 : r.dst6;
  const src = fam === 4 ? r.src4 : r.src6;
  if (r.hasDst && !inAny(q.dst, dst)) return `destination ${q.dst.text} not in ${listOrNone(dst)}`;
  if (r.hasSrc && !inAny(q.src, src)) return `source ${q.src.text} not in ${listOrNone(src)}`;
  const ports = r.ports === undefined ? null : portsText(r.ports);
  const wants = r.protocol
    ? `${r.protocol}${ports ? ` port ${ports}` : ""}`
    : ports
      ? `tcp or udp port ${ports}`
      : null;
  if (!wants) return true;
  if (q.proto === undefined) return `only ${wants} (give PROTO PORT to check it)`;
  if (r.protocol && q.proto !== r.protocol) return `only ${wants}`;
  if (r.ports !== undefined) {
    if (q.proto !== "tcp" && q.proto !== "udp") return `only ${wants}`;
    if (q.port === undefined) return `only ${wants} (give the PORT to check it)`;
    if (!portIn(q.port, r.ports)) return `only ${wants}`;
  }
  return true;
}

function ruleOutcome(
  c: Config,
  p: UplinkPlan,
  r: PlannedRule,
  q: Query,
  ctx: UplinkContext,
  trace: string[],
): { outcome: UplinkOutcome; trace: string[] } {
  if (r.stickyMs !== undefined) {
    const t = formatNftDuration(r.stickyMs);
    const known = ctx.sticky?.has(r.id) ?? false;
    const mark = ctx.sticky?.get(r.id);
    const remembered = mark == null ? undefined : p.uplinks.find((u) => u.mark === mark);
    if (remembered?.live) {
      trace.push(`sticky ${t}: the kernel remembers ${remembered.name} for this source+destination pair`);
      return { outcome: { kind: "uplink", uplink: remembered.name }, trace };
    }
    if (remembered)
      trace.push(`sticky ${t}: the remembered ${remembered.name} is down, so the pair chooses again`);
    else if (known)
      trace.push(`sticky ${t}: nothing remembered for this pair yet; its first connection chooses`);
    else
      trace.push(
        `sticky ${t}: a pair seen in the last ${t} keeps its uplink (the kernel's memory could not be read: run on the router as root); a new pair chooses`,
      );
  }
  const via = c.rules[r.id]?.via;
  if (r.target.kind === "main") {
    trace.push("via main: not balanced; the main routing table decides");
    return { outcome: { kind: "main" }, trace };
  }
  if (r.target.kind === "uplink") {
    const name = r.target.uplink;
    const order = Array.isArray(via) ? via : [];
    const down = order.slice(0, Math.max(0, order.indexOf(name)));
    trace.push(
      `via [${order.join(", ")}]: ${down.length ? `${down.join(", ")} ${down.length > 1 ? "are" : "is"} down, ` : ""}${name} is the first one up`,
    );
    return { outcome: { kind: "uplink", uplink: name }, trace };
  }
  if (Array.isArray(via)) trace.push(`via [${via.join(", ")}]: none is up, so the connection is balanced`);
  return { outcome: balance(p, q, trace), trace };
}

/** The `balance` chain: the split map indexed by numgen or jhash. */
export function balance(p: UplinkPlan, q: Query, trace: string[]): UplinkOutcome {
  const s = p.split;
  if (!s) {
    trace.push("balance: no uplink is up, so new connections are dropped");
    return { kind: "drop" };
  }
  const n = s.slots.length;
  if (s.method === "random" || s.method === "round-robin") {
    const shares = countShares(s.slots);
    if (shares.length === 1 && shares[0]) {
      trace.push(`balance (${s.method}): ${shares[0].name} is the only uplink in the split`);
      return { kind: "uplink", uplink: shares[0].name };
    }
    if (s.method === "random") {
      trace.push(
        `balance (random): numgen random mod ${n} picks each uplink with its share of the ${n} slots`,
      );
      return { kind: "spread", method: "random", shares };
    }
    trace.push(
      `balance (round-robin): numgen inc mod ${n} walks the weighted rotation; the connection gets the next uplink in it`,
    );
    return { kind: "spread", method: "round-robin", shares, rotation: s.slots };
  }
  const src = addrBytes(q.src);
  const key = s.method === "source-hash" ? src : concatKey(src, addrBytes(q.dst));
  const ip = q.src.family === 4 ? "ip" : "ip6";
  const expr = s.method === "source-hash" ? `${ip} saddr` : `${ip} saddr . ${ip} daddr`;
  const slot = nftJhash(key, n, p.hashSeed);
  const name = s.slots[slot] ?? "";
  trace.push(
    `balance (${s.method}): jhash ${expr} mod ${n} seed ${hex(p.hashSeed)} = ${slot}; slot ${slot} is ${name}`,
  );
  return { kind: "uplink", uplink: name };
}

export function countShares(slots: string[]): Share[] {
  const counts = new Map<string, number>();
  for (const n of slots) counts.set(n, (counts.get(n) ?? 0) + 1);
  return [...counts].map(([name, k]) => ({ name, share: k / slots.length }));
}

function sharesOf(ups: PlannedUplink[]): Share[] {
  const total = ups.reduce((s, u) => s + u.weight, 0);
  return ups.map((u) => ({ name: u.name, share: u.weight / total }));
}

function portIn(port: number, ports: NonNullable<PlannedRule["ports"]>): boolean {
  return Array.isArray(ports) ? ports.includes(port) : port >= ports.from && port <= ports.to;
}

function portsText(ports: NonNullable<PlannedRule["ports"]>): string {
  return Array.isArray(ports) ? ports.join(", ") : `${ports.from}-${ports.to}`;
}

function listOrNone(list: readonly string[]): string {
  return list.length ? list.join(", ") : "(none of this family)";
}
