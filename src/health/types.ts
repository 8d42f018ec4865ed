import type { EventEmitter } from "node:events";

/**
 * The contract between health sources (uplink probers, backend checkers, link watchers) and the
 * daemon's reconcile loop. Sources only observe and emit; the reconcile loop alone changes the kernel.
 */
export type HealthState = "up" | "down";

export interface UplinkObservation {
  name: string;
  state: HealthState;
  /** Why the last transition happened, in words for logs and the dashboard. */
  reason: string;
  /** Smoothed RTT (EWMA) in ms; null before the first answer. */
  rttMs: number | null;
  jitterMs: number | null;
  /** Loss ratio over the last 10 rounds, 0..1. */
  loss: number;
  /** 0..1 quality for `weights: auto` (1 = as good as the best seen). */
  quality: number;
  since: number;
  /** Why the prober cannot probe now (fping exited, stalled…): the state is held meanwhile. */
  probeError?: string | null;
  /**
   * Each family's own health (src/health/family-monitor.ts). The uplink is up while either is.
   * Missing (a monitor that knows no families): both follow `state`.
   */
  families?: Record<4 | 6, FamilyObservation>;
}

/** One family's health on an uplink. */
export interface FamilyObservation {
  state: HealthState;
  reason: string;
  rttMs: number | null;
  loss: number;
  since: number;
  /** false: no probe target of this family; it follows the other family's state. */
  probed: boolean;
  probeError?: string | null;
}

export type UplinkMonitorEvents = {
  /** Fired only on a state transition (up↔down). */
  change: [UplinkObservation];
  /** Fired after every probe round, for metrics and charts. */
  round: [UplinkObservation];
  /** The device's addresses or learned gateways changed (a new lease): the data plane must follow. */
  link: [UplinkObservation];
  /** Passive health: a suspicion taken up (re-probing), confirmed (the uplink went down) or cleared. */
  passive: [PassiveOutcome];
};

/** Passive health asks an uplink's monitor to confirm a suspicion (src/health/uplink-passive.ts). */
export interface PassiveCheck {
  /** What the traffic shows, as it stands when asked ("12 of 12 new connections unanswered"). */
  evidence(): string;
}

export interface PassiveOutcome {
  name: string;
  result: "suspect" | "confirmed" | "cleared";
  /** In words: what the traffic showed and what the probes said. */
  reason: string;
}

export interface Monitor<E extends Record<string, unknown[]>, S> extends EventEmitter<E> {
  start(): void;
  stop(): Promise<void>;
  snapshot(): S;
}

export type UplinkMonitor = Monitor<UplinkMonitorEvents, UplinkObservation> & {
  /**
   * Passive health suspects the uplink: re-probe it now and take it down when the probes fail too.
   * false when it cannot (not up, no probe targets, a confirmation in flight); else the outcome
   * follows as a `passive` event.
   */
  passiveSuspect?(check: PassiveCheck): boolean;
};

export interface BackendObservation {
  service: string;
  /** `ADDRESS:PORT` as written in the config. */
  backend: string;
  state: HealthState;
  reason: string;
  since: number;
}

export type BackendMonitorEvents = {
  change: [BackendObservation];
};

export type BackendMonitor = Monitor<BackendMonitorEvents, BackendObservation> & {
  /** Down now for a reason the checks did not see (passive health); the checks bring it back. */
  markDown?(reason: string): void;
};
