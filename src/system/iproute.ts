import type { Fam, RouteSpec, RuleSpec } from "../plan/routing.ts";
import { networkOf, parseAddr } from "../net/ip.ts";
import type { InterfaceFacts } from "../net/facts.ts";
import { defaultHops, pickGateway } from "../net/gateways.ts";
import { exec, run } from "./exec.ts";

/** The only module that runs `ip`. Reads are JSON (`-N`: numbers, not names); writes go through `ip -batch -`. */

/** A rule as the kernel reports it, with the routing protocol it was installed with (0: none). */
export type KernelRule = RuleSpec & { proto: number };

/** Any route of any table (not only defaults), enough to name it in `ip route del`. */
export interface KernelRoute {
  family: Fam;
  table: number;
  dst: string;
  /** unicast unless the kernel says otherwise (local, broadcast, unreachable…). */
  type: string;
  proto: number;
  /** The route as nflb models it, for a default route. */
  spec: RouteSpec | null;
}

export interface KernelRouting {
  rules: KernelRule[];
  routes: KernelRoute[];
}

/** What `ip` (or a fake of it, in unit tests) must do for apply and down. */
export interface IpPort {
  /** Every rule and the routes of every table of one family (and the routes' JSON, when real). */
  read(fam: Fam): Promise<KernelRouting & { routesJson?: string }>;
  /**
   * Run the lines of `text` in one `ip -batch -`. Without `force` it stops at the first failing
   * line and throws an IpBatchError saying how many lines went in before it (they stay applied).
   */
  batch(fam: Fam, text: string, opts?: { force?: boolean }): Promise<void>;
}

export class IpBatchError extends Error {
  constructor(
    readonly family: Fam,
    /** Lines applied before the failure; null when `ip` did not say (it did not start, was killed…). */
    readonly applied: number | null,
    readonly line: string | null,
    readonly stderr: string,
  ) {
    const what = line === null ? "" : ` line ${(applied ?? 0) + 1} "${line}"`;
    super(
      `ip -${family} -batch${what} failed: ${stderr
        .trim()
        .split("\n")
        .filter((l) => !l.startsWith("Command failed"))
        .slice(-3)
        .join("; ")}`,
    );
    this.name = "IpBatchError";
  }
}

interface RawRule {
  priority: number;
  src?: string;
  srclen?: number;
  fwmark?: string;
  fwmask?: string;
  table?: string;
  /** Numeric FR_ACT_* under `-N` for a rule without a table (7: unreachable). */
  action?: string;
  suppress_prefixlen?: number;
  protocol?: string;
}

const FR_ACT_UNREACHABLE = "7";
const MAIN_TABLE = 254;

export function parseRules(fam: Fam, json: string): KernelRule[] {
  return (JSON.parse(json || "[]") as RawRule[]).map((r) => {
    const table = Number(r.table);
    const rule: KernelRule = {
      family: fam,
      priority: r.priority,
      // Any other action (blackhole, prohibit, goto) is never nflb's: NaN equals no table nflb plans.
      table:
        r.action === FR_ACT_UNREACHABLE
          ? "unreachable"
          : table === MAIN_TABLE
            ? "main"
            : r.table === undefined
              ? Number.NaN
              : table,
      proto: Number(r.protocol ?? 0),
    };
    if (r.src && r.src !== "all")
      rule.from =
        r.srclen !== undefined && r.srclen !== (fam === 4 ? 32 : 128) ? `${r.src}/${r.srclen}` : r.src;
    if (r.fwmark) rule.fwmark = { value: Number(r.fwmark), mask: r.fwmask ? Number(r.fwmask) : 0xffffffff };
    if (r.suppress_prefixlen !== undefined) rule.suppressPrefixlength = r.suppress_prefixlen;
    return rule;
  });
}

interface RawHop {
  gateway?: string;
  dev?: string;
  weight?: number;
}
interface RawRoute extends RawHop {
  dst: string;
  table?: string;
  type?: string;
  protocol?: string;
  nexthops?: RawHop[];
}

export function parseRoutes(fam: Fam, json: string): KernelRoute[] {
  return (JSON.parse(json || "[]") as RawRoute[]).map((x) => {
    // The main table's routes come without a table key.
    const table = x.table === undefined ? MAIN_TABLE : Number(x.table);
    return {
      family: fam,
      table,
      dst: x.dst,
      type: x.type ?? "unicast",
      proto: Number(x.protocol ?? 0),
      spec:
        x.dst === "default" && (x.type ?? "unicast") === "unicast"
          ? {
              family: fam,
              table,
              nexthops: x.nexthops ? x.nexthops.map((h) => hopOf(h, true)) : [hopOf(x, false)],
            }
          : null,
    };
  });
}

function hopOf(h: RawHop, multipath: boolean) {
  const hop: { via?: string; dev: string; weight?: number } = { dev: h.dev ?? "" };
  if (h.gateway) hop.via = h.gateway;
  if (multipath) hop.weight = h.weight ?? 1;
  return hop;
}

/** Every rule and the routes of every table of one family, with the routes' JSON as `ip` printed it. */
export async function readRoutingRaw(fam: Fam): Promise<KernelRouting & { routesJson: string }> {
  // One process for both reads: `ip -batch` prints each command's JSON on a line of its own.
  const out = await run(["ip", "-N", `-${fam}`, "-j", "-batch", "-"], {
    input: "rule show\nroute show table all\n",
  });
  const lines = out.split("\n");
  if (lines.length < 2)
    throw new Error(`ip -${fam} -batch: expected 2 JSON lines, got: ${out.slice(0, 200)}`);
  const [rules = "", routesJson = ""] = lines;
  return { rules: parseRules(fam, rules), routes: parseRoutes(fam, routesJson), routesJson };
}

export async function ipBatch(fam: Fam, text: string, opts: { force?: boolean } = {}): Promise<void> {
  if (!text) return;
  const r = await exec(["ip", ...(opts.force ? ["-force"] : []), `-${fam}`, "-batch", "-"], { input: text });
  if (r.code === 0) return;
  // iproute2 names the failing line as "Command failed -:N"; the lines before it went in.
  const m = /Command failed -:(\d+)/.exec(r.stderr);
  const n = m ? Number(m[1]) : null;
  const lines = text.split("\n");
  throw new IpBatchError(
    fam,
    n === null || opts.force ? null : n - 1,
    n === null ? null : (lines[n - 1] ?? null),
    r.stderr,
  );
}

export const systemIp: IpPort = { read: readRoutingRaw, batch: ipBatch };

export async function ipRaw(fam: Fam, args: string[]): Promise<void> {
  await run(["ip", `-${fam}`, ...args]);
}

interface RawLink {
  ifname: string;
  flags?: string[];
  operstate?: string;
  addr_info?: { family: string; local: string; address?: string; scope: string; prefixlen: number }[];
}

/** `ip -N -j route show table all exact` the default prefix of one family: input for defaultHops. */
export function readDefaultRoutes(fam: Fam, opts: { timeoutMs?: number } = {}): Promise<string> {
  return run(
    ["ip", "-N", `-${fam}`, "-j", "route", "show", "table", "all", "exact", fam === 4 ? "0/0" : "::/0"],
    { ...opts, viaSpawner: true },
  );
}

/** Interfaces with their carrier state, global addresses and learned default gateways. */
export async function readInterfaces(
  opts: {
    gateways: boolean;
    /**
     * Every route of each family as `ip -N -j route show table all` printed it, when the caller
     * has read them anyway (apply): the default routes among them are what `exact 0/0` would
     * print, so no process of its own.
     */
    routesJson?: Promise<{ 4: string; 6: string } | undefined>;
  } = { gateways: true },
): Promise<Map<string, InterfaceFacts>> {
  // Without learned gateways, one process instead of three: this runs on every reconcile.
  const defaults = async (fam: Fam) => {
    if (!opts.gateways) return "";
    const given = await opts.routesJson;
    return given ? given[fam] : readDefaultRoutes(fam);
  };
  const [out, r4, r6] = await Promise.all([
    run(["ip", "-j", "addr", "show"], { viaSpawner: true }),
    defaults(4),
    defaults(6),
  ]);
  const hops = { 4: defaultHops(r4), 6: defaultHops(r6) };
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
    const f: InterfaceFacts = { name: l.ifname, up, addresses, subnets };
    const g4 = pickGateway(l.ifname, 4, hops[4].get(l.ifname) ?? [], subnets);
    const g6 = pickGateway(l.ifname, 6, hops[6].get(l.ifname) ?? [], subnets);
    if (g4.gw || g4.refused) f.gw4 = g4;
    if (g6.gw || g6.refused) f.gw6 = g6;
    map.set(l.ifname, f);
  }
  return map;
}
