import { isIPv4, isIPv6 } from "node:net";

export type Family = 4 | 6;

/** A validated address in canonical text form. */
export interface Addr {
  family: Family;
  text: string;
}

/** A validated prefix, normalised: `text` is always `network/len`. */
export interface Prefix {
  family: Family;
  text: string;
  len: number;
}

export function parseAddr(s: string): Addr | null {
  if (isIPv4(s)) return { family: 4, text: s };
  if (isIPv6(s)) return { family: 6, text: canonicalV6(s) };
  return null;
}

const DOT = 46;
const SLASH = 47;
const ZERO = 48;

/**
 * The common case, an IPv4 prefix written plainly, in one pass over its characters and integer
 * arithmetic (a config may hold 10,000 of them): a dotted quad as node:net's isIPv4 takes it (no
 * leading zeros), an optional length 0..32 written without leading zeros, no host bits set.
 * Undefined for anything else, which parsePrefixSlow decides: the same verdicts as it, faster
 * (test/unit/ip-prefix-fast.test.ts compares the two).
 */
export function plainV4Prefix(s: string): Prefix | undefined {
  const end = s.length;
  let i = 0;
  let n = 0;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (s.charCodeAt(i) !== DOT) return undefined;
      i++;
    }
    const start = i;
    let v = 0;
    for (; i < end && i - start < 4; i++) {
      const d = s.charCodeAt(i) - ZERO;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
    }
    const digits = i - start;
    if (digits === 0 || digits > 3 || v > 255 || (digits > 1 && s.charCodeAt(start) === ZERO))
      return undefined;
    n = n * 256 + v;
  }
  let len = 32;
  const written = i < end;
  if (written) {
    if (s.charCodeAt(i) !== SLASH) return undefined;
    const start = ++i;
    len = 0;
    for (; i < end; i++) {
      const d = s.charCodeAt(i) - ZERO;
      if (d < 0 || d > 9 || i - start > 1) return undefined;
      len = len * 10 + d;
    }
    const digits = i - start;
    if (digits === 0 || len > 32 || (digits > 1 && s.charCodeAt(start) === ZERO)) return undefined;
  }
  const host = len === 32 ? 0 : 0xffffffff >>> len;
  if ((n & host) !== 0) return undefined;
  return { family: 4, text: written ? s : `${s}/32`, len };
}

export function parsePrefix(s: string): Prefix | { error: string } {
  return plainV4Prefix(s) ?? parsePrefixSlow(s);
}

export interface PrefixSplit {
  v4: string[];
  v6: string[];
  errors: { index: number; error: string }[];
}

const splitMemo = new WeakMap<readonly string[], PrefixSplit>();

/**
 * A list of prefixes parsed and split by family (normalised texts), once per list: validation and
 * every plan of the same loaded config (the daemon re-plans on each health change) share it.
 * The lists of a parsed config are never changed in place.
 */
export function splitPrefixes(list: readonly string[]): PrefixSplit {
  const known = splitMemo.get(list);
  if (known) return known;
  const out: PrefixSplit = { v4: [], v6: [], errors: [] };
  for (let i = 0; i < list.length; i++) {
    const p = parsePrefix(list[i] as string);
    if ("error" in p) out.errors.push({ index: i, error: p.error });
    else (p.family === 4 ? out.v4 : out.v6).push(p.text);
  }
  splitMemo.set(list, out);
  return out;
}

/** Every form parseAddr takes, through node:net; exported for the test comparing it with the fast path. */
export function parsePrefixSlow(s: string): Prefix | { error: string } {
  const [host, lenText, extra] = s.split("/");
  if (host === undefined || extra !== undefined) return { error: `not an address or prefix: ${s}` };
  const addr = parseAddr(host);
  if (!addr) return { error: `not an IPv4 or IPv6 address: ${host}` };
  const max = addr.family === 4 ? 32 : 128;
  const len = lenText === undefined ? max : /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
  if (!Number.isInteger(len) || len < 0 || len > max)
    return { error: `bad prefix length in ${s} (0..${max})` };
  const bits = toBits(addr);
  if (bits.slice(len).includes("1")) {
    return {
      error: `${s} has host bits set; did you mean ${fromBits(bits.slice(0, len).padEnd(max, "0"), addr.family)}/${len}?`,
    };
  }
  return { family: addr.family, text: `${addr.text}/${len}`, len };
}

/** Expand and re-compress an IPv6 address to RFC 5952 form, so comparisons with `ip -j` output work. */
export function canonicalV6(s: string): string {
  return fromBits(toBits({ family: 6, text: s }), 6);
}

function toBits(a: Addr): string {
  if (a.family === 4)
    return a.text
      .split(".")
      .map((o) => Number(o).toString(2).padStart(8, "0"))
      .join("");
  let text = a.text;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets first.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const o = v4[1].split(".").map(Number);
    text =
      text.slice(0, -v4[1].length) +
      `${(((o[0] ?? 0) << 8) | (o[1] ?? 0)).toString(16)}:${(((o[2] ?? 0) << 8) | (o[3] ?? 0)).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return groups.map((g) => parseInt(g, 16).toString(2).padStart(16, "0")).join("");
}

function fromBits(bits: string, family: Family): string {
  if (family === 4) return [0, 8, 16, 24].map((i) => parseInt(bits.slice(i, i + 8), 2)).join(".");
  const groups = [];
  for (let i = 0; i < 128; i += 16) groups.push(parseInt(bits.slice(i, i + 16), 2).toString(16));
  // Compress the longest run (length ≥ 2) of zero groups, leftmost on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

/** Parse `ADDR:PORT` or `[V6ADDR]:PORT`. */
export function parseHostPort(s: string): { addr: Addr; port: number } | { error: string } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (!m?.[1] || !m[2]) return { error: `expected ADDRESS:PORT or [IPv6]:PORT, got ${s}` };
  const addr = parseAddr(m[1]);
  if (!addr) return { error: `not an IPv4 or IPv6 address: ${m[1]}` };
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return { error: `port out of range (1..65535): ${m[2]}` };
  return { addr, port };
}

/** Kernel interface names: at most 15 bytes; we also refuse characters that are legal but unsafe to pass around. */
export function isInterfaceName(s: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}$/.test(s);
}

export function formatHostPort(addr: Addr, port: number): string {
  return addr.family === 6 ? `[${addr.text}]:${port}` : `${addr.text}:${port}`;
}

/** The network an interface address lies in (`192.0.2.7` with 24 → `192.0.2.0/24`). */
export function networkOf(addr: Addr, len: number): Prefix {
  const max = addr.family === 4 ? 32 : 128;
  const l = Math.max(0, Math.min(max, Math.trunc(len)));
  const bits = toBits(addr).slice(0, l).padEnd(max, "0");
  return { family: addr.family, text: `${fromBits(bits, addr.family)}/${l}`, len: l };
}

export function prefixContains(p: Prefix, a: Addr): boolean {
  if (p.family !== a.family) return false;
  const net = p.text.split("/")[0] ?? "";
  return toBits({ family: p.family, text: net }).slice(0, p.len) === toBits(a).slice(0, p.len);
}
