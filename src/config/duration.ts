const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parse durations like `500ms`, `2s`, `1.5s`, `30m`, `1h` into milliseconds; null when malformed. */
export function parseDuration(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s.trim());
  if (!m?.[1] || !m[2]) return null;
  const ms = Number(m[1]) * (UNITS[m[2]] ?? NaN);
  return Number.isFinite(ms) ? Math.round(ms) : null;
}

/** Render milliseconds the way nft wants timeouts (it accepts d/h/m/s/ms units). */
export function formatNftDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
