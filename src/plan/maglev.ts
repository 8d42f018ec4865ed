import { createHash } from "node:crypto";
import type { Weighted } from "./split.ts";

/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4): every backend walks its own
 * permutation of the M table slots and, in turns, claims the next free slot of its walk. Removing
 * one of N backends re-deals only its ~M/N slots plus a small fraction of the others', so only
 * about 1/N of clients move; every backend ends up with ⌊M/N⌋ or ⌈M/N⌉ slots.
 */

/** Table sizes (primes). */
export const MAGLEV_SIZES = [16381, 32749, 65537] as const;
export const MAGLEV_MAX = 65537;

/**
 * Smallest listed prime M with M ≥ 100·N (the paper's rule: shares within 1%), at least 16381 and
 * at most 65537. The floor is for disruption, which falls with M/N: removing 1 of 10 backends
 * moves up to 2.8% of the other clients at M = 1021, 1.9% at 4093 and under 1% at 16381
 * (bench/RESULTS.md); a 16k-element map loads in ~0.1 s and a failure rewrites ~M/N of it.
 */
export function maglevSize(backends: number): number {
  return MAGLEV_SIZES.find((m) => m >= 100 * backends) ?? MAGLEV_MAX;
}

/** offset ∈ [0, M) and skip ∈ [1, M) from two independent 32-bit hashes of the backend's name. */
export function permutationOf(name: string, size: number): { offset: number; skip: number } {
  const d = createHash("sha256").update(name).digest();
  return { offset: d.readUInt32BE(0) % size, skip: (d.readUInt32BE(4) % (size - 1)) + 1 };
}

/**
 * The lookup table: slot → backend name. Weights are honoured by turns: in round r a backend of
 * weight w claims ⌊(r+1)·w/max⌋ − ⌊r·w/max⌋ slots, so equal weights give the paper's algorithm.
 * Backends are taken in name order so the table does not depend on the order of the config.
 */
export function maglevTable(backends: Weighted[], size: number): string[] {
  // Re-planning after one backend's change recomputes every service; unchanged ones are cached
  // (so callers must not modify the returned table).
  const key = `${size}|${backends.map((b) => `${b.name}=${b.weight}`).join(",")}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const table = populate(backends, size);
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
  cache.set(key, table);
  return table;
}

const CACHE_MAX = 512;
const cache = new Map<string, string[]>();

function populate(backends: Weighted[], size: number): string[] {
  const live = backends
    .filter((b) => b.weight > 0)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (live.length === 0) return [];
  if (size < 2) throw new Error("maglev table size must be ≥ 2");
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
