import type { Addr } from "../net/ip.ts";

/** One target's answer in one round: its RTT, or null when nothing came back within `timeout`. */
export interface TargetResult {
  target: string;
  rttMs: number | null;
}

/**
 * One probe to every target, as the state machine consumes it. Regular rounds arrive in `seq` order;
 * the rounds of a fast re-probe (`burst` set) come in between, in the order they were concluded.
 */
export interface RoundResult {
  /**
   * Increases by one per regular round for the life of a monitor (across prober restarts). A burst
   * round carries the seq of the overdue round that raised the suspicion.
   */
  seq: number;
  /** When the probes were sent (estimated for fping). */
  startedAt: number;
  /** When the round was concluded. */
  at: number;
  /** One entry per configured target, in config order. */
  results: TargetResult[];
  /** Why the round could not be probed at all (no source address, fping not running…). */
  error?: string;
  /**
   * The prober itself failed (fping exited, printed garbage, stalled): the round says nothing
   * about the link, so it counts for nothing; `error` says why.
   */
  unprobed?: boolean;
  /**
   * Set on an extra round sent because a regular round was overdue (suspect → fast re-probe):
   * `index` (1-based) of `count`. Such rounds count for `down_after` only (see uplink-state.ts).
   */
  burst?: { index: number; count: number };
}

/** Where probes leave from: the uplink's device and its current addresses. */
export interface ProbeSource {
  iface: string;
  /** The uplink's global addresses; a target is probed only from an address of its own family. */
  addresses: readonly Addr[];
}

/**
 * Turns a probe method into rounds, handed to its sink in `seq` order. `start` may be called again
 * after `stop` (new source addresses); seqs keep increasing across restarts.
 */
export interface Prober {
  start(source: ProbeSource): void;
  /** Stops probing. Rounds still waiting for answers are dropped: they say nothing about the link. */
  stop(): Promise<void>;
  /** Present when the prober can re-probe fast on suspicion. */
  readonly fast?: FastReprobe;
}

export type RoundSink = (round: RoundResult) => void;

/**
 * What a prober may offer for "suspect → fast re-probe" (fping does): a watch on the regular rounds
 * that reports one that is overdue, and a burst of extra rounds through the same binding.
 */
export interface FastReprobe {
  /**
   * From now on, report a regular round that has fewer than `minAnswers` answers `ms` after it was
   * sent to `onOverdue` (once per round); null stops watching.
   */
  overdueAfter(ms: number | null): void;
  /**
   * Send `count` extra rounds now, `spacingMs` apart, from the same device and addresses; they reach
   * the sink like any round, with `burst` set and `seq` (the overdue round's) as their seq. false
   * (nothing sent) when not running or when a burst is still in flight.
   */
  burst(seq: number, count: number, spacingMs: number): boolean;
  /**
   * Passive health's confirmation: `count` rounds `spacingMs` apart through the same binding, each
   * target lost unless answered within `timeoutMs`. Resolves with the rounds once all are concluded
   * (fewer when the prober stopped meanwhile); null (nothing sent) when it cannot probe now or a
   * confirmation is still in flight. Independent of `burst`; its rounds reach no sink.
   */
  confirm?(count: number, spacingMs: number, timeoutMs: number): Promise<RoundResult[]> | null;
}

/** How a monitor listens to a prober beyond its rounds. */
export interface ProberHooks {
  /** The `min_targets` of the uplink: a round with fewer answers by the overdue time is overdue. */
  minAnswers?: number;
  /** A regular round is overdue (see FastReprobe.overdueAfter). */
  onOverdue?: (seq: number) => void;
}

/** The address of `target`'s family on the uplink, or undefined when it has none. */
export function sourceFor(target: Addr, source: ProbeSource): Addr | undefined {
  return source.addresses.find((a) => a.family === target.family);
}

/** Median of the answered RTTs; null when nothing answered. */
export function medianRtt(results: readonly TargetResult[]): number | null {
  const rtts = results
    .map((r) => r.rttMs)
    .filter((r): r is number => r !== null)
    .sort((a, b) => a - b);
  if (rtts.length === 0) return null;
  const mid = rtts.length >> 1;
  return rtts.length % 2 ? (rtts[mid] as number) : ((rtts[mid - 1] as number) + (rtts[mid] as number)) / 2;
}
