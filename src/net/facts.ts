import type { Addr, Prefix } from "./ip.ts";

/** What the system looks like, as far as checking and planning need it (read by src/system, passed in). */
export interface Facts {
  interfaces: Map<string, InterfaceFacts>;
}

export interface InterfaceFacts {
  name: string;
  up: boolean;
  /** Global-scope addresses. */
  addresses: Addr[];
  /** The networks of those addresses (and point-to-point peers), when known: for `check`'s gateway warning. */
  subnets?: Prefix[];
}
