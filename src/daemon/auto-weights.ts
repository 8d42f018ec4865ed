/**
 * `weights: auto`: an uplink's effective weight is its configured weight times a quality level
 * 1..LEVELS. Levels are coarse and sticky (hysteresis) so small RTT wobbles never rewrite the
 * split; the floor of 1 keeps a poor but working link in use.
 */
export const AUTO_LEVELS = 10;
/** Quality must move this many levels away from the current one before the level changes. */
export const AUTO_HYSTERESIS = 0.75;

export function autoLevel(previous: number | undefined, quality: number): number {
  const q = Number.isFinite(quality) ? Math.min(Math.max(quality, 0), 1) : 1;
  const target = q * AUTO_LEVELS;
  const level = Math.max(1, Math.round(target));
  if (previous === undefined) return level;
  return Math.abs(target - previous) < AUTO_HYSTERESIS ? previous : level;
}

/** The weight the planner gets; static weights pass through unchanged. */
export function effectiveWeight(configured: number, level: number | undefined): number {
  return level === undefined ? configured : configured * level;
}
