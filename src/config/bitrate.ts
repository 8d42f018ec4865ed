// Link rates in bit/s, written the way tc and ISPs write them: 10Mbit, 5M, 512k, 1.5G, 100M/s.
// Prefixes are decimal (k = 1000), as in tc. Bytes are refused: tc's `mbps` means megabytes per
// second, and a silent factor of 8 is the worst kind of mistake in a capacity.

const PREFIX: Record<string, number> = { "": 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

/** Smallest and largest capacity nflb takes: 1 kbit/s .. 10 Tbit/s. */
export const MIN_BITRATE = 1000;
export const MAX_BITRATE = 1e13;

/** bit/s, or an error message saying how to write it. */
export function parseBitrate(input: string | number): number | { error: string } {
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input <= 0) return { error: `expected a rate above 0 (got ${input})` };
    return inRange(input, String(input));
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)\s*(bit|bits|b|bps|byte|bytes)?\s*(\/s|ps)?\s*$/i.exec(input);
  if (!m?.[1]) return { error: `expected a rate like 10Mbit, 5M or 512k (got ${JSON.stringify(input)})` };
  const [, n, prefix = "", unit = "", per = ""] = m;
  // "b" alone and "bps" are ambiguous between bits and bytes (tc's mbps is megabytes): say bits.
  if (/^(bps|byte|bytes)$/i.test(unit) || unit === "B" || (unit === "b" && per === "ps"))
    return { error: `write the rate in bits, like ${n}${prefix.toUpperCase()}bit (${input} reads as bytes)` };
  const value = Number(n) * (PREFIX[prefix.toLowerCase()] ?? NaN);
  if (!Number.isFinite(value) || value <= 0) return { error: `expected a rate above 0 (got ${input})` };
  return inRange(value, input.trim());
}

function inRange(value: number, shown: string): number | { error: string } {
  if (value < MIN_BITRATE || value > MAX_BITRATE)
    return { error: `${shown} is out of range: use 1k to 10T (bit/s), like 10Mbit` };
  return Math.round(value);
}

/** 10000000 → "10Mbit", 1500000 → "1.5Mbit", 512000 → "512kbit". */
export function formatBitrate(bits: number): string {
  for (const [p, f] of [
    ["T", 1e12],
    ["G", 1e9],
    ["M", 1e6],
    ["k", 1e3],
  ] as const)
    if (bits >= f) return `${Number((bits / f).toFixed(2))}${p}bit`;
  return `${Math.round(bits)}bit`;
}
