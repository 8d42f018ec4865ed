import type { LinkBytes } from "../system/linkstats.ts";

/**
 * An uplink's load from its interface's byte counters, and overflow's spill state. Pure: samples
 * in, the next state out.
 *
 * - rate = Δbytes × 8 / Δt per direction (rx = down, tx = up), smoothed by an EWMA whose gain
 *   follows the samples' real spacing (a late timer weighs more, as it covers more time).
 * - Counters that go backwards (the interface was re-created) or vanish restart the measurement.
 * - load ratio = the larger of down/capacity.down and up/capacity.up, over the directions given.
 * - Spill above `threshold`, fill again only below `recover` (< threshold): the gap is the
 *   hysteresis that keeps a link running near its limit from flipping at every sample.
 */
export interface LoadState {
  last: { at: number; bytes: LinkBytes } | null;
  /** Smoothed bit/s; null until two samples have been seen. */
  down: number | null;
  up: number | null;
}

export const initialLoad = (): LoadState => ({ last: null, down: null, up: null });

export function sampleLoad(s: LoadState, bytes: LinkBytes | null, at: number, tauMs: number): LoadState {
  if (!bytes) return initialLoad();
  const prev = s.last;
  if (!prev || at <= prev.at || bytes.rx < prev.bytes.rx || bytes.tx < prev.bytes.tx)
    return { last: { at, bytes }, down: s.down, up: s.up };
  const dt = at - prev.at;
  const down = ((bytes.rx - prev.bytes.rx) * 8 * 1000) / dt;
  const up = ((bytes.tx - prev.bytes.tx) * 8 * 1000) / dt;
  const gain = 1 - Math.exp(-dt / tauMs);
  const ewma = (old: number | null, x: number) => (old === null ? x : old + (x - old) * gain);
  return { last: { at, bytes }, down: ewma(s.down, down), up: ewma(s.up, up) };
}

export interface Capacity {
  down?: number;
  up?: number;
}

/** The share of its capacity the link carries now, in its busier direction; null without both. */
export function loadRatio(s: Pick<LoadState, "down" | "up">, cap: Capacity | undefined): number | null {
  if (!cap) return null;
  const parts: number[] = [];
  if (cap.down && s.down !== null) parts.push(s.down / cap.down);
  if (cap.up && s.up !== null) parts.push(s.up / cap.up);
  return parts.length ? Math.max(...parts) : null;
}

/** The next spill state: true = over its threshold (new connections go elsewhere). */
export function spillStep(
  spilling: boolean,
  ratio: number | null,
  threshold: number,
  recover: number,
): boolean {
  if (ratio === null) return false;
  return spilling ? ratio >= recover : ratio > threshold;
}
