import type { createHash as CreateHash } from "node:crypto";
import { apportion, type Weighted } from "./split.ts";

/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4): every backend walks its own
 * permutation of the M table slots and, in turns, claims the next free slot of its walk.
 *
 * Plain Maglev re-populates the whole table when a backend leaves, which moves a few percent of
 * the other backends' slots too (up to ~3% at M ≈ 100·N, bench/RESULTS.md). nflb never
 * re-populates a table it has: a table is populated once from the configured backends (its
 * "configured table"), and every later table is dealt from an earlier one. Dealing keeps every slot
 * of a backend within its share, frees the slots of backends that left (or are down, drained,
 * over their share), and the backends under their share claim free slots along their own
 * permutations, in turns, until each holds exactly its share (largest remainder of M by weight).
 * So a failure moves only the failed backend's clients and a recovery moves them back (the live
 * table is dealt from the configured one); a config edit that removes a backend moves only its
 * clients, one that adds a backend moves only the slots it takes, ⌊share⌋ or ⌈share⌉ of them
 * (the new configured table is dealt from the previous one, which the planner passes in); and
 * every backend holds ⌊share⌋ or ⌈share⌉ slots.
 *
 * M is a step of a fixed ladder (about ×1.5 per step) above 100 slots per backend, a function of
 * N alone: edits keep M, and so every client's slot (`jhash mod M`), unless N crosses a step.
 */

/** Smallest table: below it a few weighted backends could not be apportioned finely. */
export const MAGLEV_MIN = 1021;
/** Slots per backend: shares within 1% (the paper's M > 100·N; exact shares give ±1 slot). */
export const SLOTS_PER_BACKEND = 100;
/** Growth from one table size to the next: bigger steps mean fewer resizes, more slots. */
const STEP = 1.5;

const sizes: number[] = [MAGLEV_MIN];

/**
 * The smallest step of the ladder 1021, 1543, 2333, 3511, … (each the smallest prime ≥ 1.5× the
 * one before) with at least 100 slots per configured backend N. A function of N alone, so a
 * restart finds the same M, and M stays put on failures and on edits that do not cross a step
 * (N = 11, 16, 24, 36, 53, 80, 119, 179, 268, 402, 603, 904).
 */
export function maglevSize(backends: number): number {
  const want = SLOTS_PER_BACKEND * backends;
  let i = 0;
  for (; (sizes[i] as number) < want; i++)
    if (i + 1 === sizes.length) sizes.push(nextPrime(Math.ceil((sizes[i] as number) * STEP)));
  return sizes[i] as number;
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

// node:crypto loads when a maglev table is first built: loading it takes 5–8 ms, which every
// `nflb plan` and `apply` paid, with or without a maglev service.
let createHash: typeof CreateHash | undefined;

/** offset ∈ [0, M) and skip ∈ [1, M) from two independent 32-bit hashes of the backend's name. */
export function permutationOf(name: string, size: number): { offset: number; skip: number } {
  createHash ??= process.getBuiltinModule("node:crypto").createHash;
  const d = createHash("sha256").update(name).digest();
  return { offset: d.readUInt32BE(0) % size, skip: (d.readUInt32BE(4) % (size - 1)) + 1 };
}

/**
 * The lookup table: slot → backend name, for the live backends `backends` (effective weights;
 * weight 0 takes no slot), dealt from the configured table `base` (see maglevBase), or else from
 * the table populated from `configured` (every configured backend with its configured weight;
 * `backends` when omitted). Independent of the order of either list. Tables are cached: the same
 * base and live backends give the very same array back (callers must not modify it).
 */
export function maglevTable(
  backends: Weighted[],
  size: number,
  configured?: Weighted[],
  base?: readonly string[],
): string[] {
  const live = byName(backends);
  if (live.length === 0) return [];
  if (size < 2) throw new Error("maglev table size must be ≥ 2");
  const seeds = configured ? byName(configured) : live;
  const from = base?.length === size ? base : baseTable(seeds.length ? seeds : live, size);
  return dealCached(from, live, size);
}

/**
 * A service's configured table: every configured backend at exactly its configured share. Dealt
 * from `previous` (the configured table of the plan in force, same size) when there is one, so a
 * config edit moves only the slots it must; populated (plain Maglev) when there is none (a cold
 * start) or M changed. `previous` itself when it still fits.
 */
export function maglevBase(configured: Weighted[], size: number, previous?: readonly string[]): string[] {
  const seeds = byName(configured);
  if (seeds.length === 0) return [];
  if (size < 2) throw new Error("maglev table size must be ≥ 2");
  return previous?.length === size ? dealCached(previous, seeds, size) : baseTable(seeds, size);
}

/** A service's configured tables: its regular backends', and its backups' (used while no regular one is up). */
export interface MaglevPools {
  regular: string[];
  backup: string[];
}

/** Each pool's configured table (maglevBase), dealt from `previous` (the plan in force) when given. */
export function maglevPools(
  configured: (Weighted & { backup: boolean })[],
  previous?: MaglevPools,
): MaglevPools {
  const pool = (backup: boolean, was?: string[]) => {
    const members = configured.filter((b) => b.backup === backup);
    return maglevBase(members, maglevSize(members.length), was);
  };
  return { regular: pool(false, previous?.regular), backup: pool(true, previous?.backup) };
}

/** Plain Maglev population (weights by turns), dealt to exact shares: the first configured table. */
function baseTable(seeds: Weighted[], size: number): string[] {
  const key = `${size}|${listKey(seeds)}|base`;
  const hit = cached(key);
  if (hit) return hit;
  return remember(key, deal(populate(seeds, size), seeds, size));
}

/** Identities of the tables dealt from, for the cache's keys. */
const ids = new WeakMap<readonly string[], number>();
let nextId = 0;

function dealCached(from: readonly string[], live: Weighted[], size: number): string[] {
  let id = ids.get(from);
  if (id === undefined) ids.set(from, (id = nextId++));
  const key = `${id}|${listKey(live)}`;
  return cached(key) ?? remember(key, deal(from, live, size));
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
