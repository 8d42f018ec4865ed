import type { Addr, Prefix } from "./ip.ts";

/** What the system looks like, as far as checking and planning need it (read by src/system, passed in). */
export interface Facts {
  interfaces: Map<string, InterfaceFacts>;
  /**
   * The uplink slots in force (the state file, or the daemon's last apply), by name: planning keeps
   * every name in its slot (src/plan/uplink-ids.ts). Unset: slots by config order.
   */
  uplinkSlots?: Readonly<Record<string, number>>;
  /** Slots whose mark conntrack entries still carry: not given to a new uplink while another is free. */
  heldSlots?: readonly number[];
}

export interface InterfaceFacts {
  name: string;
  up: boolean;
  /** Global-scope addresses. */
  addresses: Addr[];
  /** The networks of those addresses (and point-to-point peers), when known: for `check`'s gateway warning. */
  subnets?: Prefix[];
}
