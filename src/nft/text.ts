/** Small helpers for writing nft syntax inside rules and elements. */

export function q(s: string): string {
  // Interface names are validated before planning; quoting keeps nft from reading them as keywords.
  return `"${s}"`;
}

export function hex(n: number): string {
  return "0x" + (n >>> 0).toString(16).padStart(8, "0");
}

/** `meta mark` / `ct mark` assignment that touches only the bits inside `mask`. */
export function setMasked(what: "meta mark" | "ct mark", value: number, mask: number): string {
  return `${what} set ${what} and ${hex(~mask >>> 0)} or ${hex(value)}`;
}
