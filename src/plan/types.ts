import type { Addr } from "../net/ip.ts";
import type { MarkLayout } from "../config/marks.ts";

// Facts moved below config and plan (config's system checks read them too); re-exported here for
// the modules that import them from the plan.
export type { Facts, InterfaceFacts } from "../net/facts.ts";

/** Health as the daemon sees it; `apply` assumes every uplink up at its configured weight. */
export interface UplinkHealth {
  up: boolean;
  /** Effective weight (weights: auto, or an API override); defaults to the configured one. */
  weight?: number;
}

export type Health = Record<string, UplinkHealth>;

export interface BackendHealth {
  up: boolean;
  /** Effective weight: 0 drains (API or config); defaults to the configured one. */
  weight?: number;
  /** Current connections (from conntrack), for `least-conn`; missing counts as 0. */
  connections?: number;
}

/** Backend health per service, keyed by the backend's `ADDRESS:PORT` as written in the config. */
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
  nat: "masquerade" | "none" | "snat";
  addresses: Addr[];
  live: boolean;
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
  target: Target;
  stickyMs?: number;
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
  split: PlannedSplit | null;
  balanceFrom: string[] | null;
  balanceSources: { v4: string[]; v6: string[] } | null;
  rules: PlannedRule[];
  local: "primary" | "balance";
  primary4: string | null;
  primary6: string | null;
  hashSeed: number;
}
