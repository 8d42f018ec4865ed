import type { Addr } from "../net/ip.ts";
import type { MarkLayout } from "../config/marks.ts";

// Facts moved below config and plan (config's system checks read them too); re-exported here for
// the modules that import them from the plan.
export type { Facts, InterfaceFacts } from "../net/facts.ts";

/** Health as the daemon sees it; `apply` assumes every uplink up at its configured weight. */
export interface UplinkHealth {
  /** Some family of the uplink is up (or it is assumed up). */
  up: boolean;
  /** Effective weight (weights: auto, or an API override); defaults to the configured one. */
  weight?: number;
  /**
   * Families the probes call down while the uplink is up (a broken IPv6 gateway): only that
   * family's new connections leave it. Missing: every family follows `up`.
   */
  downFamilies?: readonly (4 | 6)[];
}

export type Health = Record<string, UplinkHealth>;

export interface BackendHealth {
  up: boolean;
  /** Effective weight: 0 drains (API or config); defaults to the configured one. */
  weight?: number;
  /** Current connections (from conntrack), for `least-conn`; missing counts as 0. */
  connections?: number;
}

/**
 * Backend health per service, keyed by the backend's `ADDRESS:PORT` as written in the config. A
 * service's record is not changed in place once planned from: a change is a new record (the
 * planner reuses a service's plan while it gets the very same record).
 */
export type ServiceHealth = Record<string, Record<string, BackendHealth>>;

export interface PlannedUplink {
  name: string;
  /** Position in the config. */
  index: number;
  /** Identity in the kernel (src/plan/uplink-ids.ts): mark, table and fwmark priority follow it. */
  slot: number;
  iface: string;
  mark: number;
  table: number;
  gw4?: string;
  gw6?: string;
  /** `gateway: auto`: a family without a learned gateway is not carried (no on-link fallback). */
  gwAuto?: true;
  /** With `gateway: auto`, why a family has no gateway (no address, none learned, one refused). */
  gwReason4?: string;
  gwReason6?: string;
  /** The interface does not exist (facts read from the host say so): nothing is routed by it. */
  absent?: true;
  nat: "masquerade" | "none" | "snat";
  addresses: Addr[];
  /** Takes new connections of some family (live4 || live6). */
  live: boolean;
  /** Takes new IPv4 / IPv6 connections: up, that family carried and not called down by its probes. */
  live4: boolean;
  live6: boolean;
  weight: number;
}

export type Target = { kind: "uplink"; uplink: string } | { kind: "main" } | { kind: "balance" };

export interface PlannedRule {
  id: number;
  name: string;
  dst4: string[];
  dst6: string[];
  src4: string[];
  src6: string[];
  hasDst: boolean;
  hasSrc: boolean;
  protocol?: "tcp" | "udp" | "icmp";
  ports?: number[] | { from: number; to: number };
  /** Where the rule sends its connections (IPv4 too when `target6` is set). */
  target: Target;
  /** The IPv6 target when it differs from `target` (the first of `via` is down for IPv6 only). */
  target6?: Target;
  stickyMs?: number;
  /** Names whose answered addresses the rule matches too (its dom_* sets). */
  domains?: string[];
}

/** How a plan's domain sets are declared. */
export interface DomainSetsPlan {
  /** Elements per set at most. */
  size: number;
  /** Lifetime of a keep-set element after the last packet, in ms. */
  keepMs: number;
}

export interface PlannedSplit {
  method: "random" | "round-robin" | "source-hash" | "source-dest-hash";
  /** Uplink name per slot; the kernel picks slot `numgen|jhash mod slots.length`. */
  slots: string[];
}

export interface UplinkPlan {
  layout: MarkLayout;
  tableBase: number;
  ruleBase: number;
  uplinks: PlannedUplink[];
  /** The split of new IPv4 connections over the uplinks live for IPv4; null when none is. */
  split4: PlannedSplit | null;
  /** The same for IPv6: each family fails over on its own. */
  split6: PlannedSplit | null;
  balanceFrom: string[] | null;
  /**
   * nflb sets accept_local=1 on the `balanceFrom` interfaces and drops what arrives there from a
   * local source itself (src/plan/nft-local-source.ts); false without `balanceFrom`.
   */
  acceptLocal: boolean;
  balanceSources: { v4: string[]; v6: string[] } | null;
  rules: PlannedRule[];
  /** Present when any rule has domains. */
  domains?: DomainSetsPlan;
  local: "primary" | "balance";
  primary4: string | null;
  primary6: string | null;
  hashSeed: number;
  /**
   * `balance.conntrack_events: minimal` while passive health listens to conntrack (at least 2
   * uplinks, one with `passive` on): the connections nflb balances report to conntrack's listeners
   * only what it needs (see PASSIVE_CT_EVENTS in nft-uplinks.ts).
   */
  passiveEvents?: boolean;
}
