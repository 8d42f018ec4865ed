import type { Addr } from "../net/ip.ts";

/** One target's answer in one round: its RTT, or null when nothing came back within `timeout`. */
export interface TargetResult {
  target: string;
  rttMs: number | null;
}

/** One probe to every target, as the state machine consumes it. Rounds arrive in `seq` order. */
export interface RoundResult {
  /** Increases by one per round for the life of a monitor (across prober restarts). */
  seq: number;
  /** When the probes were sent (estimated for fping). */
  startedAt: number;
  /** When the round was concluded. */
  at: number;
  /** One entry per configured target, in config order. */
  results: TargetResult[];
  /** Why the round could not be probed at all (no source address, fping not running…). */
  error?: string;
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
}

export type RoundSink = (round: RoundResult) => void;

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
