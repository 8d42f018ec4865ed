import type { UplinkPlan } from "./types.ts";
import { BALANCE_FROM } from "../nft/names.ts";

/**
 * With `balance.accept_local` nflb sets accept_local=1 on the `balance.from` interfaces
 * (src/plan/sysctls.ts). Once any policy rule exists, the kernel checks the source of every
 * forwarded IPv4 packet with a full FIB lookup (rule walk and all) unless rp_filter is 0 and
 * accept_local is 1 on the interface it arrived on (fib_validate_source). What that check still
 * refused with rp_filter 0 was a source that is one of the router's own addresses; accept_local
 * lets those in, so nflb drops them with this rule. `fib saddr type` looks the address up in the
 * local table alone (no rule walk) and follows address changes (DHCP) without the daemon.
 *
 * It sits after the mark restore, not before it: a rule ahead of the restore runs on every packet
 * and cost as much as the sysctl saves (bench/RESULTS.md). Behind it, it sees every packet but
 * those of connections pinned to an uplink: each new connection's first packet, traffic to the
 * router itself, anything untracked or invalid. A pinned connection's packet with the router's
 * address as source can only be one that leaves by the uplink toward the connection's peer
 * (docs/DATAPLANE.md).
 */
export function localSourceGuard(p: UplinkPlan): string[] {
  if (!p.acceptLocal || !p.balanceFrom?.length) return [];
  return [`meta nfproto ipv4 iifname @${BALANCE_FROM} fib saddr type local drop`];
}
