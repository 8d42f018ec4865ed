import type { Fam, RouteSpec, RuleSpec } from "../render/routes.ts";
import { routeArgs, ruleArgs } from "../render/routes.ts";
import { networkOf, parseAddr } from "../net/ip.ts";
import type { InterfaceFacts } from "../plan/types.ts";
import { exec, run } from "./exec.ts";

/** The only module that runs `ip`. Reads are JSON; writes are one argv each. */

interface RawRule {
  priority: number;
  src?: string;
  srclen?: number;
  fwmark?: string;
  fwmask?: string;
  table?: string;
  /** "unreachable", "prohibit", … for a rule without a table. */
  action?: string;
  suppress_prefixlen?: number;
}

export async function readRules(fam: Fam): Promise<RuleSpec[]> {
  const out = await run(["ip", `-${fam}`, "-j", "rule", "list"]);
  return (JSON.parse(out || "[]") as RawRule[]).map((r) => {
    const spec: RuleSpec = {
      family: fam,
      priority: r.priority,
      table: r.action === "unreachable" ? "unreachable" : r.table === "main" ? "main" : Number(r.table),
    };
    if (r.src && r.src !== "all")
      spec.from =
        r.srclen !== undefined && r.srclen !== (fam === 4 ? 32 : 128) ? `${r.src}/${r.srclen}` : r.src;
    if (r.fwmark) spec.fwmark = { value: Number(r.fwmark), mask: r.fwmask ? Number(r.fwmask) : 0xffffffff };
    if (r.suppress_prefixlen !== undefined) spec.suppressPrefixlength = r.suppress_prefixlen;
    return spec;
  });
}

interface RawHop {
  gateway?: string;
  dev?: string;
  weight?: number;
}
interface RawRoute extends RawHop {
  dst: string;
  nexthops?: RawHop[];
}

/** Default routes of one table (nflb puts nothing else in its tables). */
export async function readDefaultRoutes(fam: Fam, table: number): Promise<RouteSpec[]> {
  const r = await exec(["ip", `-${fam}`, "-j", "route", "show", "table", String(table)]);
  if (r.code !== 0) return []; // "FIB table does not exist" is an empty table
  return (JSON.parse(r.stdout || "[]") as RawRoute[])
    .filter((x) => x.dst === "default")
    .map((x) => ({
      family: fam,
      table,
      nexthops: x.nexthops ? x.nexthops.map((h) => hopOf(h, true)) : [hopOf(x, false)],
    }));
}

function hopOf(h: RawHop, multipath: boolean) {
  const hop: { via?: string; dev: string; weight?: number } = { dev: h.dev ?? "" };
  if (h.gateway) hop.via = h.gateway;
  if (multipath) hop.weight = h.weight ?? 1;
  return hop;
}

/** All routes in any table of a range, as `ip route del` argv tails, for `down`. */
export async function routesInTables(fam: Fam, from: number, to: number): Promise<string[][]> {
  const out = await run(["ip", `-${fam}`, "-j", "route", "show", "table", "all"]);
  const routes = JSON.parse(out || "[]") as (RawRoute & { table?: string; type?: string })[];
  return routes
    .filter((x) => {
      const t = Number(x.table);
      return Number.isInteger(t) && t >= from && t <= to;
    })
    .map((x) => [
      "route",
      "del",
      ...(x.type && x.type !== "unicast" ? [x.type] : []),
      x.dst,
      "table",
      String(x.table),
    ]);
}

export async function addRule(r: RuleSpec): Promise<void> {
  await run(["ip", `-${r.family}`, ...ruleArgs(r)]);
}

export async function deleteRule(r: RuleSpec): Promise<void> {
  const args = ruleArgs(r);
  args[1] = "del";
  await run(["ip", `-${r.family}`, ...args]);
}

export async function replaceRoute(r: RouteSpec): Promise<void> {
  await run(["ip", `-${r.family}`, ...routeArgs(r, "replace")]);
}

export async function deleteRoute(r: RouteSpec): Promise<void> {
  await run(["ip", `-${r.family}`, "route", "del", "default", "table", String(r.table)]);
}

export async function ipRaw(fam: Fam, args: string[]): Promise<void> {
  await run(["ip", `-${fam}`, ...args]);
}

interface RawLink {
  ifname: string;
  flags?: string[];
  operstate?: string;
  addr_info?: { family: string; local: string; address?: string; scope: string; prefixlen: number }[];
}

/** Interfaces with their carrier state and global addresses. */
export async function readInterfaces(): Promise<Map<string, InterfaceFacts>> {
  const out = await run(["ip", "-j", "addr", "show"]);
  const links = JSON.parse(out || "[]") as RawLink[];
  const map = new Map<string, InterfaceFacts>();
  for (const l of links) {
    const addresses = (l.addr_info ?? [])
      .filter((a) => a.scope === "global")
      .map((a) => parseAddr(a.local))
      .filter((a) => a !== null);
    const flags = l.flags ?? [];
    // `address` is the peer of a point-to-point address: on-link too.
    const subnets = (l.addr_info ?? [])
      .filter((a) => a.scope === "global")
      .flatMap((a) => [a.local, a.address].map((x) => ({ addr: x && parseAddr(x), len: a.prefixlen })))
      .flatMap(({ addr, len }) => (addr ? [networkOf(addr, len)] : []));
    const up = flags.includes("UP") && flags.includes("LOWER_UP");
    map.set(l.ifname, { name: l.ifname, up, addresses, subnets });
  }
  return map;
}
