/**
 * The kernel's `jhash()` (Bob Jenkins' lookup3, include/linux/jhash.h) and nft_hash's use of it,
 * so `nflb explain` can compute the exact slot a `jhash … mod N seed S` expression picks.
 *
 * nft_jhash_eval: `reciprocal_scale(jhash(&regs->data[sreg], len, seed), modulus) + offset`.
 * The key is the register contents: each field in network byte order, each concatenated field
 * padded with zero bytes to a whole 32-bit register (nft_payload_eval zeroes the last word).
 * jhash reads its 32-bit words with the CPU's byte order; on little-endian machines (x86, arm64)
 * that is byte i of a word weighted by 2^(8i), which is what this module does.
 */
import type { Addr } from "../../net/ip.ts";

const INITVAL = 0xdeadbeef;

const rol = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

function mix(s: [number, number, number]): void {
  let [a, b, c] = s;
  a = (a - c) >>> 0;
  a = (a ^ rol(c, 4)) >>> 0;
  c = (c + b) >>> 0;
  b = (b - a) >>> 0;
  b = (b ^ rol(a, 6)) >>> 0;
  a = (a + c) >>> 0;
  c = (c - b) >>> 0;
  c = (c ^ rol(b, 8)) >>> 0;
  b = (b + a) >>> 0;
  a = (a - c) >>> 0;
  a = (a ^ rol(c, 16)) >>> 0;
  c = (c + b) >>> 0;
  b = (b - a) >>> 0;
  b = (b ^ rol(a, 19)) >>> 0;
  a = (a + c) >>> 0;
  c = (c - b) >>> 0;
  c = (c ^ rol(b, 4)) >>> 0;
  b = (b + a) >>> 0;
  s[0] = a;
  s[1] = b;
  s[2] = c;
}

function final(s: [number, number, number]): void {
  let [a, b, c] = s;
  c = (c ^ b) >>> 0;
  c = (c - rol(b, 14)) >>> 0;
  a = (a ^ c) >>> 0;
  a = (a - rol(c, 11)) >>> 0;
  b = (b ^ a) >>> 0;
  b = (b - rol(a, 25)) >>> 0;
  c = (c ^ b) >>> 0;
  c = (c - rol(b, 16)) >>> 0;
  a = (a ^ c) >>> 0;
  a = (a - rol(c, 4)) >>> 0;
  b = (b ^ a) >>> 0;
  b = (b - rol(a, 14)) >>> 0;
  c = (c ^ b) >>> 0;
  c = (c - rol(b, 24)) >>> 0;
  s[0] = a;
  s[1] = b;
  s[2] = c;
}

/** A little-endian 32-bit word of `k` from `at`, reading only bytes before `end` (lookup3's tail). */
function word(k: Uint8Array, at: number, end: number): number {
  let w = 0;
  for (let i = 3; i >= 0; i--) w = (w * 256 + (at + i < end ? (k[at + i] ?? 0) : 0)) >>> 0;
  return w;
}

/** `jhash(key, key.length, seed)` as the kernel computes it on a little-endian CPU. */
export function jhash(key: Uint8Array, seed: number): number {
  let length = key.length;
  const init = (INITVAL + length + (seed >>> 0)) >>> 0;
  const s: [number, number, number] = [init, init, init];
  let k = 0;
  while (length > 12) {
    s[0] = (s[0] + word(key, k, key.length)) >>> 0;
    s[1] = (s[1] + word(key, k + 4, key.length)) >>> 0;
    s[2] = (s[2] + word(key, k + 8, key.length)) >>> 0;
    mix(s);
    length -= 12;
    k += 12;
  }
  // The last 1..12 bytes; zero bytes add nothing, so reading the words zero-padded is the same as
  // the kernel's fall-through switch. Nothing left: no final mix.
  if (length === 0) return s[2];
  const end = k + length;
  s[0] = (s[0] + word(key, k, end)) >>> 0;
  s[1] = (s[1] + word(key, k + 4, end)) >>> 0;
  s[2] = (s[2] + word(key, k + 8, end)) >>> 0;
  final(s);
  return s[2];
}

/** The kernel's `reciprocal_scale(val, n)`: `(u64)val * n >> 32`, a value in [0, n). */
export function reciprocalScale(val: number, n: number): number {
  return Number((BigInt(val >>> 0) * BigInt(n >>> 0)) >> 32n);
}

/** What `jhash KEY mod N seed S` evaluates to in nft (offset 0). */
export function nftJhash(key: Uint8Array, modulus: number, seed: number): number {
  return reciprocalScale(jhash(key, seed), modulus);
}

/** An address in network byte order: the bytes nft loads into a register. */
export function addrBytes(a: Addr): Uint8Array {
  if (a.family === 4) return Uint8Array.from(a.text.split(".").map(Number));
  const [head = "", tail] = a.text.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const n = parseInt(g, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 0xff;
  });
  return out;
}

/** A port in network byte order. */
export function portBytes(p: number): Uint8Array {
  return Uint8Array.from([p >> 8, p & 0xff]);
}

/** An nft concatenation `a . b . …`: every field padded with zeros to whole 32-bit registers. */
export function concatKey(...fields: Uint8Array[]): Uint8Array {
  const len = fields.reduce((s, f) => s + Math.ceil(f.length / 4) * 4, 0);
  const out = new Uint8Array(len);
  let at = 0;
  for (const f of fields) {
    out.set(f, at);
    at += Math.ceil(f.length / 4) * 4;
  }
  return out;
}
