import type { DnsStatus } from "../dns/service.ts";

/**
 * The JSON of `GET /api/v1/status` (the contract's fields plus a few extensions), shared by the
 * daemon that builds it and `nflb status` that prints it.
 */
export interface UplinkStatus {
  name: string;
  interface: string;
  state: "up" | "down" | "disabled";
  /** Why the last transition happened. */
  reason: string;
  /** ISO time of the last transition, when known. */
  since: string | null;
  /** Configured weight. */
  weight: number;
  /** The weight the split uses now (`weights: auto` scales it; 0 when not live). */
  effective_weight: number;
  share: number;
  rtt_ms: number | null;
  jitter_ms: number | null;
  loss: number;
  /** New connections that left by this uplink (kernel counter). */
  connections: number | null;
  /** False when no prober watches this uplink (it is assumed up). */
  probed: boolean;
  /** Per family: down with the reason when the uplink cannot carry it now (no device, address or gateway). */
  families?: { ipv4: FamilyStatus; ipv6: FamilyStatus };
  /**
   * Why its prober cannot probe now (fping exited, stalled, printed garbage; it is restarted with
   * backoff); the uplink keeps its state meanwhile. null while probing works.
   */
  probe_error?: string | null;
  /** `capacity` from the config, bit/s per direction (null: not given). */
  capacity?: { down: number | null; up: number | null } | null;
  /** Measured from the interface's counters, smoothed bit/s; null while nothing samples them (no capacity, no overflow). */
  load?: { down: number | null; up: number | null } | null;
  /** load / capacity in the busier direction, 0..1+; null without a capacity. */
  load_ratio?: number | null;
  /** `method: overflow`: spilling = over its threshold, new connections go to the next uplink; null otherwise. */
  overflow?: "spilling" | "filling" | null;
  /** `metered: true`: only rules that name it, and the balance while every unmetered uplink is down. */
  metered?: boolean;
  /**
   * Passive health from the uplink's live connections (conntrack): new connections answered and
   * left unanswered (for `passive.timeout`), the unanswered ones in a row now, and whether a
   * suspicion is being re-probed. null when nothing watches it (passive off, or fewer than 2 uplinks).
   */
  passive?: { answered: number; unanswered: number; streak: number; suspect: boolean } | null;
}

/**
 * One family of an uplink: down when the uplink cannot carry it now (no device, address or
 * gateway) or when its own probes call it down (a broken IPv6 gateway), while the other family
 * may stay up; only the family that is down leaves the balance.
 */
export interface FamilyStatus {
  state: "up" | "down" | "disabled";
  reason: string;
  /** Probed by targets of its own family; false: no such target, it follows the uplink's state. */
  probed?: boolean;
  /** ISO time of this family's last transition, when known. */
  since?: string | null;
  rtt_ms?: number | null;
  loss?: number;
  /** The fraction of this family's new connections the uplink gets now. */
  share?: number;
}

export interface BackendStatus {
  address: string;
  /** maint: no new connections and no health checks, set by an operator. */
  state: "up" | "down" | "draining" | "maint";
  /** The weight in use now (0 when drained or in maint; a runtime weight when one is set). */
  weight: number;
  /** The weight the config gives it. */
  configured_weight?: number;
  /** Connections it holds now (conntrack: TCP until closing, UDP flows); null when unknown. */
  connections: number | null;
  /** New connections sent to it since the table was installed (kernel counter). */
  connections_total?: number | null;
  /** Bytes forwarded to the backend / received from it (kernel counters). */
  bytes_to_backend: number | null;
  bytes_from_backend: number | null;
  reason: string;
  since: string | null;
  /** `backup: true` in the config: takes new connections only while no regular backend is up. */
  backup?: boolean;
  /** Takes new connections now: up, weight above 0, and in the pool (regulars, or the backups). */
  serving?: boolean;
}

/** A service's health check as configured (what a check sends and what it wants back). */
export interface CheckStatus {
  method: "tcp" | "http" | "https" | "none";
  interval_ms: number;
  timeout_ms: number;
  rise: number;
  fall: number;
  port: number | null;
  path?: string;
  expect_status?: number | null;
  host?: string | null;
  sni?: string | null;
  expect_body?: string | null;
}

export interface ServiceStatus {
  name: string;
  listen: string;
  protocol: string;
  backends: BackendStatus[];
  scheduler?: string;
  /** `persistence` as configured (`5m`), or null. */
  persistence?: string | null;
  /** No regular backend is up: the backups take the new connections. */
  on_backups?: boolean;
  check?: CheckStatus;
}

export interface ClusterStatus {
  node: string;
  members: unknown[];
  buckets_owned: number;
  [extra: string]: unknown;
}

export interface StatusJson {
  uplinks: UplinkStatus[];
  services: ServiceStatus[];
  cluster: ClusterStatus | null;
  /** ISO time of the last change to the kernel. */
  applied_at: string | null;
  /** Short hash of the running config's text. */
  config_version: string;
  config_file: string;
  started_at: string;
  /** Why the last SIGHUP reload was refused; null once a reload succeeds. */
  last_reload_error: string | null;
  /**
   * Why the last change to the kernel failed (the old data plane keeps serving and the daemon
   * retries with backoff); null once one succeeds.
   */
  last_apply_error?: string | null;
  /** Every uplink is down and the last data plane is kept as it was. */
  keeping_last_data_plane: boolean;
  /** The DNS forwarder and the domain rules' sets, when the config has `dns`. */
  dns?: DnsStatus;
}
