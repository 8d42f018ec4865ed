import type { Config } from "../config/schema.ts";
import type { RoutingPlan } from "./routing.ts";
import { serviceEntries } from "../config/service-entries.ts";

export interface SysctlSpec {
  key: string;
  value: string;
  why: string;
}

const v6Services = new WeakMap<Config, boolean>();

/** Some service listens on an IPv6 VIP (once per config object: the daemon plans thousands of services per change). */
function hasIPv6Service(c: Config): boolean {
  let v = v6Services.get(c);
  if (v === undefined) v6Services.set(c, (v = serviceEntries(c).some(([, s]) => s.listen.startsWith("["))));
  return v;
}

/** Kernel settings the data plane needs; `apply` records the old values and `down` puts them back. */
export function planSysctls(c: Config, routing: RoutingPlan | null): SysctlSpec[] {
  const out: SysctlSpec[] = [];
  const v6 = routing?.rules.some((r) => r.family === 6) ?? false;
  if (c.uplinks || c.services)
    out.push({ key: "net/ipv4/ip_forward", value: "1", why: "route LAN and backend traffic" });
  if (v6) out.push({ key: "net/ipv6/conf/all/forwarding", value: "1", why: "route IPv6 over the uplinks" });
  else if (hasIPv6Service(c))
    out.push({ key: "net/ipv6/conf/all/forwarding", value: "1", why: "route IPv6 to service backends" });
  for (const u of Object.values(c.uplinks ?? {})) {
    // Loose mode: a reply may arrive on an uplink that is not the main table's best route back.
    out.push({
      key: `net/ipv4/conf/${u.interface}/rp_filter`,
      value: "2",
      why: `loose reverse-path filter on ${u.interface}`,
    });
    // The reverse-path check of a packet arriving on an uplink looks the source up with the packet's
    // mark, which prerouting restored: it stops at the uplink's fwmark rule, instead of walking every
    // rule twice with mark 0 (the kernel checks the source of each forwarded packet whenever policy
    // rules exist, whatever rp_filter says: half of the rule walking of a balanced connection).
    out.push({
      key: `net/ipv4/conf/${u.interface}/src_valid_mark`,
      value: "1",
      why: `reverse-path check by the uplink's mark on ${u.interface}`,
    });
  }
  // The LAN side's reverse-path check on the kernel's shortcut; the rule of
  // src/plan/nft-local-source.ts drops what it let through from the router's own addresses.
  if (c.uplinks && c.balance.accept_local)
    for (const i of c.balance.from ?? [])
      out.push({
        key: `net/ipv4/conf/${i}/accept_local`,
        value: "1",
        why: `reverse-path check of ${i}'s packets without a FIB lookup (nflb drops local sources)`,
      });
  if (c.uplinks && c.balance.local === "balance") {
    out.push({
      key: "net/ipv4/fib_multipath_hash_policy",
      value: "1",
      why: "spread the router's own flows by L4 hash",
    });
    if (v6)
      out.push({
        key: "net/ipv6/fib_multipath_hash_policy",
        value: "1",
        why: "spread the router's own IPv6 flows by L4 hash",
      });
  }
  return out;
}
