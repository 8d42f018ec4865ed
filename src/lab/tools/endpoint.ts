import { isIP } from "node:net";

export interface Endpoint {
  address: string;
  port: number;
  family: 4 | 6;
}

/** `198.18.200.1:80`, `[2001:db8::1]:80` or the bracket-less `2001:db8::1:80` (last colon splits). */
export function parseEndpoint(text: string): Endpoint {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^(.*):(\d+)$/.exec(text);
  if (!m) throw new Error(`expected ADDRESS:PORT, got "${text}"`);
  const address = m[1] ?? "";
  const port = Number(m[2]);
  const family = isIP(address);
  if (family === 0) throw new Error(`not an IP address: "${address}" in "${text}"`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad port in "${text}"`);
  return { address, port, family: family as 4 | 6 };
}

export function formatEndpoint(e: { address: string; port: number }): string {
  return e.address.includes(":") ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/** Dual-stack sockets report IPv4 peers as `::ffff:a.b.c.d`; tests compare against plain IPv4. */
export function plainAddress(address: string | undefined): string {
  if (!address) return "";
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/** Integer option with bounds, so a typo cannot start an unbounded loop. */
export function boundedInt(
  value: string | undefined,
  name: string,
  dflt: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return dflt;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer ${min}..${max}`);
  return n;
}
