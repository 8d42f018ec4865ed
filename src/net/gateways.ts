import { parseAddr, prefixContains, type Addr, type Family, type Prefix } from "./ip.ts";

/**
 * Gateways learned from the system's routes (what a DHCP client or router advertisements install
 * for a device), validated before anything uses them: a route is data from outside nflb.
 */

/** An uplink's `gateway:` setting after validation. */
export type GatewaySetting = readonly string[] | "auto" | undefined;

/** The addresses written in the config (none for `auto` or an omitted gateway). */
export function staticGateways(g: GatewaySetting): readonly string[] {
  return g === undefined || g === "auto" ? [] : g;
}

/** nflb's own routes carry this protocol number (ROUTE_PROTO in src/plan/routing.ts): never learned from. */
const NFLB_PROTO = "110";
/** A device with more default routes than this is not a DHCP/RA uplink: the rest are ignored. */
const MAX_HOPS_PER_DEVICE = 8;

interface RawHop {
  gateway?: string;
  dev?: string;
}
interface RawRoute extends RawHop {
  dst?: string;
  type?: string;
  protocol?: string;
  nexthops?: RawHop[];
}

/**
 * The next hops of the default routes of every table, by device, in the kernel's order, from
 * `ip -N -j -4|-6 route show table all exact 0/0|::/0`. nflb's own routes are skipped (learning
 * from them would keep a stale gateway alive after the lease moved on).
 */
export function defaultHops(json: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let raw: unknown;
  try {
    raw = JSON.parse(json.trim() || "[]");
  } catch {
    return out;
  }
  if (!Array.isArray(raw)) return out;
  for (const r of raw as RawRoute[]) {
    if (typeof r !== "object" || r === null) continue;
    if (r.dst !== "default" || (r.type ?? "unicast") !== "unicast") continue;
    if (String(r.protocol ?? "") === NFLB_PROTO) continue;
    for (const h of Array.isArray(r.nexthops) ? r.nexthops : [r]) {
      if (typeof h.dev !== "string" || typeof h.gateway !== "string") continue;
      const list = out.get(h.dev) ?? [];
      if (list.length < MAX_HOPS_PER_DEVICE && !list.includes(h.gateway)) list.push(h.gateway);
      out.set(h.dev, list);
    }
  }
  return out;
}

/** What a device offers for one family: a usable gateway, or why the one found was refused. */
export interface LearnedGateway {
  gw?: string;
  refused?: string;
}

/**
 * The first candidate that is an address of the family and on-link: inside one of the device's
 * subnets, or (IPv6) link-local, as routers advertise themselves. A candidate outside every subnet
 * is refused with a reason; with no candidate at all, nothing is learned.
 */
export function pickGateway(
  iface: string,
  fam: Family,
  candidates: readonly string[],
  subnets: readonly Prefix[],
): LearnedGateway {
  const nets = subnets.filter((p) => p.family === fam);
  let refused: string | undefined;
  for (const c of candidates) {
    const a = parseAddr(c);
    if (!a || a.family !== fam) {
      refused ??= `IPv${fam} gateway ${JSON.stringify(c.slice(0, 64))} on ${iface} is not an IPv${fam} address`;
      continue;
    }
    if (onLink(a, nets)) return { gw: a.text };
    refused ??= `IPv${fam} gateway ${a.text} on ${iface} is outside its subnets (${nets.map((p) => p.text).join(", ") || "none"}): refused`;
  }
  return refused ? { refused } : {};
}

function onLink(a: Addr, nets: readonly Prefix[]): boolean {
  if (a.family === 6 && /^fe[89ab][0-9a-f]:/.test(a.text)) return true;
  return nets.some((p) => prefixContains(p, a));
}

/** What the plan and the health check need to know about an uplink's device. */
export interface DeviceView {
  iface: string;
  addresses: readonly Addr[];
  gw4?: LearnedGateway;
  gw6?: LearnedGateway;
}

/** The gateways an uplink uses now, and, per family, why it cannot carry that family (null: it can). */
export interface ResolvedGateways {
  gw4?: string;
  gw6?: string;
  /** Only `auto` makes a missing gateway a reason: an omitted one falls back to an on-link route. */
  auto: boolean;
  reason4: string | null;
  reason6: string | null;
}

export function resolveGateways(setting: GatewaySetting, dev: DeviceView | undefined): ResolvedGateways {
  const out: ResolvedGateways = { auto: setting === "auto", reason4: null, reason6: null };
  if (setting !== undefined && setting !== "auto") {
    for (const g of setting) {
      const a = parseAddr(g);
      if (a?.family === 4 && !out.gw4) out.gw4 = a.text;
      if (a?.family === 6 && !out.gw6) out.gw6 = a.text;
    }
    return out;
  }
  if (dev?.gw4?.gw) out.gw4 = dev.gw4.gw;
  if (dev?.gw6?.gw) out.gw6 = dev.gw6.gw;
  if (!out.auto) return out;
  const iface = dev?.iface ?? "?";
  for (const fam of [4, 6] as const) {
    const learned = fam === 4 ? dev?.gw4 : dev?.gw6;
    if (learned?.gw) continue;
    const reason = !dev?.addresses.some((a) => a.family === fam)
      ? `no IPv${fam} address on ${iface}`
      : (learned?.refused ?? `no IPv${fam} gateway learned on ${iface}`);
    if (fam === 4) out.reason4 = reason;
    else out.reason6 = reason;
  }
  return out;
}

/**
 * Why an uplink with `gateway: auto` carries no family at all (null when it carries one): the
 * reason of the family it has an address of, IPv4 first.
 */
export function autoGatewayProblem(setting: GatewaySetting, dev: DeviceView): string | null {
  if (setting !== "auto") return null;
  const r = resolveGateways(setting, dev);
  if (r.reason4 === null || r.reason6 === null) return null;
  const has = (fam: Family) => dev.addresses.some((a) => a.family === fam);
  if (has(4) || !has(6)) return r.reason4;
  return r.reason6;
}
