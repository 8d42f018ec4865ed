import { createHash } from "node:crypto";
import { apportion, type Weighted } from "./split.ts";

/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4): every backend walks its own
 * permutation of the M table slots and, in turns, claims the next free slot of its walk.
 *
 * Plain Maglev re-populates the whole table when a backend leaves, which moves a few percent of
 * the other backends' slots too (up to 8% for 5 backends at M ≈ 200·N, bench/RESULTS.md). nflb
 * populates the table once from the configured backends and their configured weights, then
 * deals only what health, drain and weight changes free: a backend that is down or over its
 * share gives slots up, the others claim free slots along their own permutations until each
 * holds exactly its share (largest remainder of M by effective weight). So a failure moves only
 * the failed backend's clients, a recovery moves them back, and every live backend holds
 * ⌊share⌋ or ⌈share⌉ slots.
 */

/** Smallest table: below it a few weighted backends could not be apportioned finely. */
export const MAGLEV_MIN = 1021;
/** Slots per backend: shares within 1% (the paper's M > 100·N; exact shares give ±1 slot). */
export const SLOTS_PER_BACKEND = 100;

/** The smallest prime M ≥ max(1021, 100·N), N the configured backends (so M stays put on failures). */
export function maglevSize(backends: number): number {
  return nextPrime(Math.max(MAGLEV_MIN, SLOTS_PER_BACKEND * backends));
}

export function nextPrime(n: number): number {
  for (let m = Math.max(2, Math.ceil(n)); ; m++) if (isPrime(m)) return m;
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** offset ∈ [0, M) and skip ∈ [1, M) from two independent 32-bit hashes of the backend's name. */
export function permutationOf(name: string, size: number): { offset: number; skip: number } {
  const d = createHash("sha256").update(name).digest();
  return { offset: d.readUInt32BE(0) % size, skip: (d.readUInt32BE(4) % (size - 1)) + 1 };
}

/**
 * The lookup table: slot → backend name, for the live backends `backends` (effective weights;
 * weight 0 takes no slot) over a table populated from `configured` (every configured backend with
 * its configured weight; `backends` when omitted). Independent of the order of either list.
 * Tables are cached: re-planning after one backend's change recomputes every service, and the
 * unchanged ones get the very same array back (callers must not modify it).
 */
export function maglevTable(backends: Weighted[], size: number, configured?: Weighted[]): string[] {
  const live = byName(backends);
  if (live.length === 0) return [];
  if (size < 2) throw new Error("maglev table size must be ≥ 2");
  const seeds = configured ? byName(configured) : live;
  const key = `${size}|${listKey(live)}|${configured ? listKey(seeds) : "="}`;
  const hit = cached(key);
  if (hit) return hit;
  const base = baseTable(seeds.length ? seeds : live, size);
  return remember(key, deal(base, live, size));
}

/** Plain Maglev population (weights by turns), the starting point of every table. */
function baseTable(seeds: Weighted[], size: number): string[] {
  const key = `${size}|${listKey(seeds)}|base`;
  const hit = cached(key);
  if (hit) return hit;
  return remember(key, populate(seeds, size));
}

function populate(live: Weighted[], size: number): string[] {
  const maxW = Math.max(...live.map((b) => b.weight));
  const perm = live.map((b) => permutationOf(b.name, size));
  const next = live.map(() => 0);
  const owner = new Int32Array(size).fill(-1);
  let filled = 0;
  for (let round = 0; filled < size; round++) {
    for (let i = 0; i < live.length && filled < size; i++) {
      const w = live[i]?.weight ?? 0;
      const turns = Math.floor(((round + 1) * w) / maxW) - Math.floor((round * w) / maxW);
      const p = perm[i] as { offset: number; skip: number };
      for (let t = 0; t < turns && filled < size; t++) {
        let j = next[i] ?? 0;
        let slot = (p.offset + j * p.skip) % size;
        while (owner[slot] !== -1) {
          j++;
          slot = (p.offset + j * p.skip) % size;
        }
        owner[slot] = i;
        next[i] = j + 1;
        filled++;
      }
    }
  }
  return Array.from(owner, (i) => live[i]?.name ?? "");
}

/**
 * `base` with every live backend at exactly its share: slots of backends that are not live, or
 * beyond a backend's share, are freed (the lowest slots are kept), and backends under their share
 * claim free slots along their own permutations, in turns. Slots of a backend within its share
 * never move.
 */
function deal(base: readonly string[], live: Weighted[], size: number): string[] {
  const quota = new Map(apportion(live, size).map((q) => [q.name, q.weight]));
  const held = new Map<string, number>();
  const out: string[] = new Array<string>(size);
  const free = new Uint8Array(size);
  let freeCount = 0;
  for (let i = 0; i < size; i++) {
    const name = base[i] ?? "";
    const q = quota.get(name);
    const h = held.get(name) ?? 0;
    if (q !== undefined && h < q) {
      out[i] = name;
      held.set(name, h + 1);
    } else {
      free[i] = 1;
      freeCount++;
    }
  }
  // Nothing to deal: the populated table itself (one array for the cache and the diff).
  if (freeCount === 0) return base as string[];
  const wanting = live
    .map((b) => ({ name: b.name, need: (quota.get(b.name) ?? 0) - (held.get(b.name) ?? 0), j: 0 }))
    .filter((w) => w.need > 0)
    .map((w) => ({ ...w, p: permutationOf(w.name, size) }));
  // The shares sum to M, so the needs sum to the free slots; the guard only bounds the loop.
  for (let progress = true; freeCount > 0 && progress;) {
    progress = false;
    for (const w of wanting) {
      if (w.need === 0) continue;
      let slot = (w.p.offset + w.j * w.p.skip) % size;
      while (free[slot] === 0) {
        w.j++;
        slot = (w.p.offset + w.j * w.p.skip) % size;
      }
      free[slot] = 0;
      out[slot] = w.name;
      w.j++;
      w.need--;
      freeCount--;
      progress = true;
    }
  }
  return out;
}

const byName = (ws: Weighted[]) =>
  ws.filter((b) => b.weight > 0).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
const listKey = (ws: Weighted[]) => ws.map((b) => `${b.name}=${b.weight}`).join(",");

/**
 * Bounded by slots, not tables: 5,000 services of 1,021 slots must all stay cached, or every
 * re-plan would rebuild (and the diff compare) every table.
 */
const CACHE_SLOTS = 16_000_000;
const cache = new Map<string, string[]>();
let cachedSlots = 0;

function cached(key: string): string[] | undefined {
  const hit = cache.get(key);
  if (hit) {
    // Most recently used last, so eviction drops the tables no plan uses any more.
    cache.delete(key);
    cache.set(key, hit);
  }
  return hit;
}

function remember(key: string, table: string[]): string[] {
  while (cachedSlots + table.length > CACHE_SLOTS && cache.size > 0) {
    const [oldest, t] = cache.entries().next().value as [string, string[]];
    cache.delete(oldest);
    cachedSlots -= t.length;
  }
  cache.set(key, table);
  cachedSlots += table.length;
  return table;
}
