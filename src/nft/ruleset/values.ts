import { isIPv4, isIPv6 } from "node:net";
import { canonicalV6 } from "../../net/ip.ts";

/**
 * Values as the kernel compares them: numbers and addresses as unsigned integers (an address is
 * its bytes in network order), interface names and cgroup paths as strings. Symbolic constants
 * (`tcp`, `established`, `dnat`, `host`, …) are resolved by the type of what they are compared to.
 */
export type Val = bigint | string;

/** The datatypes nflb's ruleset uses; anything else is refused when parsed. */
export type VType =
  | "ipv4"
  | "ipv6"
  | "int"
  | "proto"
  | "nfproto"
  | "ifname"
  | "ctstate"
  | "ctstatus"
  | "ctdir"
  | "tcpflags"
  | "pkttype"
  | "fibtype"
  | "icmpv6type"
  | "ether"
  | "cgroup"
  | "verdict"
  | "counter"
  | "tchandle";

/** One element key field: a single value (lo = hi), a range or a prefix. */
export interface Atom {
  lo: Val;
  hi: Val;
}

export class NftValueError extends Error {}

const SYMBOLS: Partial<Record<VType, Record<string, number>>> = {
  proto: { icmp: 1, igmp: 2, tcp: 6, udp: 17, "ipv6-icmp": 58, icmpv6: 58, sctp: 132, gre: 47, esp: 50 },
  nfproto: { ipv4: 2, ipv6: 10 },
  ctstate: { invalid: 1, established: 2, related: 4, new: 8, untracked: 64 },
  ctstatus: {
    expected: 1,
    "seen-reply": 2,
    assured: 4,
    confirmed: 8,
    snat: 0x10,
    dnat: 0x20,
    dying: 0x200,
  },
  ctdir: { original: 0, reply: 1 },
  tcpflags: { fin: 1, syn: 2, rst: 4, psh: 8, ack: 0x10, urg: 0x20, ecn: 0x40, cwr: 0x80 },
  pkttype: { host: 0, unicast: 0, broadcast: 1, multicast: 2, other: 3 },
  fibtype: {
    unspec: 0,
    unicast: 1,
    local: 2,
    broadcast: 3,
    anycast: 4,
    multicast: 5,
    blackhole: 6,
    unreachable: 7,
    prohibit: 8,
  },
  icmpv6type: {
    "echo-request": 128,
    "echo-reply": 129,
    "nd-router-solicit": 133,
    "nd-router-advert": 134,
    "nd-neighbor-solicit": 135,
    "nd-neighbor-advert": 136,
  },
};

/** Types whose implicit comparison is a flag test (`ct state established,related`). */
export const BITMASK_TYPES: ReadonlySet<VType> = new Set(["ctstate", "ctstatus", "tcpflags"]);

/** `nft`'s type names (`type ipv4_addr . inet_service`) → ours. */
export const TYPE_NAMES: Record<string, VType> = {
  ipv4_addr: "ipv4",
  ipv6_addr: "ipv6",
  inet_proto: "proto",
  inet_service: "int",
  ifname: "ifname",
  mark: "int",
  integer: "int",
  verdict: "verdict",
  counter: "counter",
  ct_state: "ctstate",
  ct_status: "ctstatus",
  ether_addr: "ether",
  nf_proto: "nfproto",
  tc_handle: "tchandle",
};

export function ipv4ToInt(s: string): bigint {
  return s.split(".").reduce((n, o) => (n << 8n) | BigInt(Number(o)), 0n);
}

export function ipv6ToInt(s: string): bigint {
  const [head = "", tail] = s.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

export function intToIpv4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join(".");
}

/** An integer as `bytes` bytes in network order (what nft loads into a register). */
export function toBytes(n: bigint, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = bytes - 1; i >= 0; i--, n >>= 8n) out[i] = Number(n & 0xffn);
  return out;
}

function prefixRange(base: bigint, len: number, bits: number): Atom {
  const host = (1n << BigInt(bits - len)) - 1n;
  const lo = base & ~host & ((1n << BigInt(bits)) - 1n);
  return { lo, hi: lo | host };
}

function parseNumber(text: string): bigint | null {
  if (/^0x[0-9a-f]+$/i.test(text)) return BigInt(text);
  if (/^\d+$/.test(text)) return BigInt(text);
  return null;
}

/** One literal of type `t`: a value, `a-b` range or address prefix. */
export function parseAtom(t: VType, text: string, quoted = false): Atom {
  const one = (v: Val): Atom => ({ lo: v, hi: v });
  if (t === "ifname" || t === "cgroup" || t === "counter") return one(text);
  if (quoted) throw new NftValueError(`"${text}" is a string, not a ${t}`);
  if (t === "ipv4" || t === "ipv6") {
    const bits = t === "ipv4" ? 32 : 128;
    const valid = t === "ipv4" ? isIPv4 : isIPv6;
    const conv = t === "ipv4" ? ipv4ToInt : ipv6ToInt;
    if (/^0x[0-9a-f]+$/i.test(text)) return one(BigInt(text));
    const [addr = "", len] = text.split("/");
    if (len !== undefined && valid(addr)) return prefixRange(conv(addr), Number(len), bits);
    if (valid(text)) return one(conv(text));
    const dash = text.indexOf("-");
    const [a = "", b = ""] = [text.slice(0, dash), text.slice(dash + 1)];
    if (dash > 0 && valid(a) && valid(b)) return { lo: conv(a), hi: conv(b) };
    throw new NftValueError(`${text} is not an ${t} address`);
  }
  if (t === "tchandle") return tcHandleAtom(text);
  if (t === "ether") {
    if (/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text)) return one(BigInt("0x" + text.replaceAll(":", "")));
    throw new NftValueError(`${text} is not an ethernet address`);
  }
  const sym = SYMBOLS[t]?.[text];
  if (sym !== undefined) return one(BigInt(sym));
  const n = parseNumber(text);
  if (n !== null) return one(n);
  const m = /^([0-9a-fx]+)-([0-9a-fx]+)$/i.exec(text);
  const lo = m ? parseNumber(m[1] ?? "") : null;
  const hi = m ? parseNumber(m[2] ?? "") : null;
  if (lo !== null && hi !== null) return { lo, hi };
  throw new NftValueError(`${text} is not a valid ${t} value`);
}

/** `meta priority` values as nft writes them: `none`, `root`, `MAJOR:MINOR` in hex, or a range of them. */
function tcHandleAtom(text: string): Atom {
  const one = (w: string): bigint => {
    if (w === "none") return 0n;
    if (w === "root") return 0xffffffffn;
    const m = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(w);
    if (m) return (BigInt(`0x${m[1] ?? ""}`) << 16n) | BigInt(`0x${m[2] ?? ""}`);
    const n = parseNumber(w);
    if (n !== null && n <= 0xffffffffn) return n;
    throw new NftValueError(`${w} is not a tc handle`);
  };
  const dash = text.indexOf("-");
  if (dash > 0) return { lo: one(text.slice(0, dash)), hi: one(text.slice(dash + 1)) };
  const v = one(text);
  return { lo: v, hi: v };
}

/** A value of type `t` for people: addresses in their usual form, marks in hex. */
export function formatVal(t: VType | undefined, v: Val): string {
  if (typeof v === "string") return `"${v}"`;
  if (t === "tchandle") return v === 0n ? "none" : `${(v >> 16n).toString(16)}:${(v & 0xffffn).toString(16)}`;
  if (t === "ipv4") return intToIpv4(v);
  if (t === "ipv6") {
    const groups = [];
    for (let s = 112n; s >= 0n; s -= 16n) groups.push(((v >> s) & 0xffffn).toString(16));
    return canonicalV6(groups.join(":"));
  }
  const names = t ? SYMBOLS[t] : undefined;
  const name = names && Object.entries(names).find(([, n]) => BigInt(n) === v)?.[0];
  if (name) return name;
  return v > 0xffffn ? `0x${v.toString(16).padStart(8, "0")}` : String(v);
}

export function inAtom(v: Val, a: Atom): boolean {
  if (typeof v === "string" || typeof a.lo === "string" || typeof a.hi === "string")
    return v === a.lo && v === a.hi;
  return v >= a.lo && v <= a.hi;
}

export function sameAtom(a: Atom, b: Atom): boolean {
  return a.lo === b.lo && a.hi === b.hi;
}

/** `30m`, `1667ms`, `9m59s968ms`, `1h`, `2d` → milliseconds. */
export function parseDuration(text: string): number {
  const re = /(\d+)(ms|d|h|m|s)/gy;
  let ms = 0;
  let at = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms"];
    ms += Number(m[1]) * unit;
    at = re.lastIndex;
  }
  if (at !== text.length || text.length === 0) throw new NftValueError(`${text} is not a duration`);
  return ms;
}
