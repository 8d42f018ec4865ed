const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The longest delay Node's timers take; a longer one fires after 1 ms (with a warning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Parse durations like `500ms`, `2s`, `1.5s`, `30m`, `1h`, `7d` into milliseconds; null when malformed. */
export function parseDuration(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(s.trim());
  if (!m?.[1] || !m[2]) return null;
  const ms = Number(m[1]) * (UNITS[m[2]] ?? NaN);
  return Number.isFinite(ms) ? Math.round(ms) : null;
}

/** Render milliseconds the way nft wants timeouts (it accepts d/h/m/s/ms units). */
export function formatNftDuration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** For messages and docs: like nft's form, but seconds up to two minutes (60s reads better than 1m). */
export function formatDuration(ms: number): string {
  return ms < 120_000 && ms % 1000 === 0 ? `${ms / 1000}s` : formatNftDuration(ms);
}
