import { FAMILY, TABLE } from "../nft/names.ts";
import type { Fam } from "../plan/routing.ts";
import { systemIp, type IpPort, type KernelRouting } from "../system/iproute.ts";
import { listTableBounded } from "../system/nft.ts";
import { loadState, type State } from "../system/state.ts";

// What `nflb plan` and `apply` read of the host before they change anything, in a module that
// imports little: the CLI loads it (src/cli/host-reads.ts) and starts the reads before the
// planner and the rest of apply load.

/** What apply reads before it changes anything. */
export interface Current {
  state: State;
  kernel: KernelRouting;
  /**
   * nflb's tables as `nft list table` prints them (null: not there), by "FAMILY NAME": apply
   * sends only what differs (src/nft/live.ts). Unset: apply replaces the tables whole.
   */
  nft?: ReadonlyMap<string, string | null>;
}

/** The tables `nflb apply` may find: the one it owns and the cluster's ARP table. */
const LIVE_TABLES = [`${FAMILY} ${TABLE}`, `arp ${TABLE}`];

/**
 * The state file, every routing rule and route, and (with `nft`) nflb's tables as they are, read
 * together (process start dominates each read). Under the state lock: `nflb apply` starts this
 * before it parses the config; `routesJson` is the routes as `ip` printed them, for the gateway
 * facts the config check needs (no `ip route … exact 0/0` of their own).
 */
export function readCurrent(
  ip: IpPort = systemIp,
  opts: { nft?: boolean } = {},
): {
  current: Promise<Current>;
  /** The same without the nft tables, sooner: planning needs only these. */
  routing: Promise<Omit<Current, "nft">>;
  routesJson: Promise<{ 4: string; 6: string } | undefined>;
} {
  const kernel = readAll(ip);
  const nft = opts.nft
    ? Promise.all(LIVE_TABLES.map(async (t) => [t, await listTable(t)] as const)).then(
        (e) => new Map(e.filter((x): x is [string, string | null] => x[1] !== undefined)),
      )
    : undefined;
  const routing = Promise.all([loadState(), kernel]).then(([state, k]) => ({
    state,
    kernel: { rules: k.rules, routes: k.routes },
  }));
  const current = Promise.all([routing, nft]).then(([r, live]) => ({ ...r, ...(live ? { nft: live } : {}) }));
  return { current, routing, routesJson: kernel.then((k) => k.routesJson).catch(() => undefined) };
}

/**
 * A table too big to be worth reading (services with hundreds of thousands of elements: nft
 * prints tens of MB) is left out of the reading, and apply replaces it whole as before.
 */
const LIVE_BOUNDS = { maxChars: 8 << 20, timeoutMs: 10_000 };

function listTable(ref: string): Promise<string | null | undefined> {
  const [family = "", name = ""] = ref.split(" ");
  return listTableBounded(family, name, LIVE_BOUNDS);
}

const FAMILIES: readonly Fam[] = [4, 6];

/**
 * Every rule and route: `ip rule` and `ip route … table all` of each family (one process per
 * family), both families at once; with the routes' JSON when the port gives it.
 */
export async function readAll(
  ip: IpPort,
): Promise<KernelRouting & { routesJson?: { 4: string; 6: string } }> {
  const [v4, v6] = await Promise.all(FAMILIES.map((f) => ip.read(f)));
  const both = [v4, v6] as const;
  const out = { rules: both.flatMap((k) => k?.rules ?? []), routes: both.flatMap((k) => k?.routes ?? []) };
  return v4?.routesJson !== undefined && v6?.routesJson !== undefined
    ? { ...out, routesJson: { 4: v4.routesJson, 6: v6.routesJson } }
    : out;
}
