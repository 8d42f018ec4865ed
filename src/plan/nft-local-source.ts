import type { UplinkPlan } from "./types.ts";
import type { NftSection } from "./nft-table.ts";
import { BALANCE_FROM } from "../nft/names.ts";

/**
 * With `balance.accept_local` nflb sets accept_local=1 on the `balance.from` interfaces
 * (src/plan/sysctls.ts). Once any policy rule exists, the kernel checks the source of every
 * forwarded IPv4 packet with a full FIB lookup (rule walk and all) unless rp_filter is 0 and
 * accept_local is 1 on the interface it arrived on (fib_validate_source); that lookup is what kept
 * a balanced LAN connection several per cent behind one plain masquerade. What the check still
 * did with rp_filter 0 was refuse a source that is one of the router's own addresses; accept_local
 * lets those in, so nflb drops them here, ahead of everything else in prerouting. `fib saddr type`
 * looks the address up in the local table alone (no rule walk): what the kernel's own shortcut
 * costs, and it follows address changes (DHCP) without the daemon.
 */
export function buildLocalSourceGuard(p: UplinkPlan): NftSection | null {
  if (!p.acceptLocal || !p.balanceFrom?.length) return null;
  return {
    objects: [],
    prerouting: [`meta nfproto ipv4 iifname @${BALANCE_FROM} fib saddr type local drop`],
    output: [],
    postroutingNat: [],
  };
}
