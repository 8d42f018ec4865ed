/**
 * Help is wrapped at 80 columns, or the terminal's width when narrower. So everywhere but a
 * terminal narrower than 80 it is the same text, and main.ts can print it precomputed.
 */
export const HELP_WIDTH = 80;

export function helpWidth(s: { isTTY?: boolean; columns?: number }): number {
  return s.isTTY && s.columns ? Math.min(s.columns, HELP_WIDTH) : HELP_WIDTH;
}
