/**
 * `weights: auto` quality, 0..1, from the uplink's own measurements (seed 000's idea: a large
 * probe packet makes congestion show in the RTT).
 *
 *   baseline = the lowest round RTT seen in the last 10 minutes (the uplink's unloaded RTT)
 *   queueing = max(0, srtt - baseline) + jitter   (RTT that swings hurts as much as RTT that sits high)
 *   delay    = 100 ms / (100 ms + queueing)          1 unloaded, 0.5 at +100 ms of queueing
 *   lossF    = max(0, 1 - loss / 0.5)                1 at 0 %, 0.8 at 10 %, 0 at ≥ 50 %
 *   raw      = clamp(delay × lossF, 0.1, 1)
 *   quality  = raw smoothed by an EWMA with a 5 s time constant (rounds' spacing decides the gain)
 *
 * Relative to the uplink's own baseline, so a long but idle path (satellite, another continent)
 * is not punished for its distance, only for the queueing and loss that mean it is full. The floor
 * keeps a poor but working link in use (health, not quality, takes links out); the smoothing and the
 * daemon's coarse levels with hysteresis (src/daemon/auto-weights.ts) keep shares from oscillating.
 */
export const QUALITY = {
  refDelayMs: 100,
  lossAtZero: 0.5,
  floor: 0.1,
  tauMs: 5000,
  baselineWindowMs: 10 * 60_000,
  bucketMs: 30_000,
} as const;

export interface QualityState {
  /** Minimum RTT per time bucket, oldest first, covering the baseline window. */
  buckets: { start: number; min: number }[];
  value: number;
  lastAt: number | null;
}

export function initialQuality(): QualityState {
  return { buckets: [], value: 1, lastAt: null };
}

export function baselineRtt(q: QualityState): number | null {
  return q.buckets.length ? Math.min(...q.buckets.map((b) => b.min)) : null;
}

export function rawQuality(
  srttMs: number | null,
  baselineMs: number | null,
  loss: number,
  jitterMs: number | null = null,
): number {
  const queueing =
    (srttMs !== null && baselineMs !== null ? Math.max(0, srttMs - baselineMs) : 0) +
    (jitterMs !== null && Number.isFinite(jitterMs) ? Math.max(0, jitterMs) : 0);
  const delay = QUALITY.refDelayMs / (QUALITY.refDelayMs + queueing);
  const lossF = Math.max(0, 1 - Math.min(Math.max(loss, 0), 1) / QUALITY.lossAtZero);
  return Math.min(1, Math.max(QUALITY.floor, delay * lossF));
}

/** Fold one round in: its median RTT (null when nothing answered), the smoothed RTT and the loss. */
export function updateQuality(
  q: QualityState,
  m: { at: number; rttMs: number | null; srttMs: number | null; loss: number; jitterMs?: number | null },
): QualityState {
  let buckets = q.buckets.filter((b) => b.start > m.at - QUALITY.baselineWindowMs);
  if (m.rttMs !== null) {
    const start = m.at - (m.at % QUALITY.bucketMs);
    const last = buckets[buckets.length - 1];
    if (last && last.start === start)
      buckets = [...buckets.slice(0, -1), { start, min: Math.min(last.min, m.rttMs) }];
    else buckets = [...buckets, { start, min: m.rttMs }];
  }
  const next: QualityState = { buckets, value: q.value, lastAt: m.at };
  const raw = rawQuality(m.srttMs, baselineRtt(next), m.loss, m.jitterMs ?? null);
  const dt = q.lastAt === null ? QUALITY.tauMs : Math.max(0, m.at - q.lastAt);
  const gain = 1 - Math.exp(-dt / QUALITY.tauMs);
  next.value = q.value + (raw - q.value) * gain;
  return next;
}
