/**
 * How new connections are divided among uplinks (or backends): a table of slots that the
 * kernel indexes with `numgen`/`jhash … mod N`. Pure arithmetic, shared by uplinks and services.
 */
export interface Weighted {
  name: string;
  weight: number;
}

export function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Most slots a rotation may use; beyond this weights are scaled down (largest remainder). */
export const MAX_ROTATION = 4096;

/** Reduce weights by their common divisor, scaling down (never to 0) when the sum is too large. */
export function reduceWeights(items: Weighted[], maxTotal = MAX_ROTATION): Weighted[] {
  const live = items.filter((i) => i.weight > 0);
  const g = live.reduce((acc, i) => gcd(acc, i.weight), 0) || 1;
  let out = live.map((i) => ({ name: i.name, weight: i.weight / g }));
  const total = out.reduce((s, i) => s + i.weight, 0);
  if (total > maxTotal) out = apportion(out, maxTotal).filter((i) => i.weight > 0);
  return out;
}

/** Largest-remainder apportionment of `total` slots by weight; every positive weight gets ≥ 1 when possible. */
export function apportion(items: Weighted[], total: number): Weighted[] {
  const sum = items.reduce((s, i) => s + i.weight, 0);
  if (sum === 0) return items.map((i) => ({ name: i.name, weight: 0 }));
  const exact = items.map((i) => (i.weight / sum) * total);
  const base = exact.map((e) => Math.max(Math.floor(e), 0));
  let left = total - base.reduce((s, b) => s + b, 0);
  const order = exact
    .map((e, idx) => ({ idx, rem: e - Math.floor(e) }))
    .sort((a, b) => b.rem - a.rem || a.idx - b.idx);
  for (const { idx } of order) {
    if (left <= 0) break;
    base[idx] = (base[idx] ?? 0) + 1;
    left--;
  }
  return items.map((i, idx) => ({ name: i.name, weight: base[idx] ?? 0 }));
}

/**
 * Smooth weighted round-robin (the nginx algorithm): the exact weighted rotation, interleaved so
 * that weights 5:3:2 give a,b,a,c,a,b,a,c,b,a rather than five a's in a row.
 */
export function smoothRotation(items: Weighted[]): string[] {
  const live = items.filter((i) => i.weight > 0);
  const total = live.reduce((s, i) => s + i.weight, 0);
  const current = live.map(() => 0);
  const out: string[] = [];
  for (let n = 0; n < total; n++) {
    let best = 0;
    for (let i = 0; i < live.length; i++) {
      current[i] = (current[i] ?? 0) + (live[i]?.weight ?? 0);
      if ((current[i] ?? 0) > (current[best] ?? 0)) best = i;
    }
    current[best] = (current[best] ?? 0) - total;
    out.push(live[best]?.name ?? "");
  }
  return out;
}

/** Contiguous runs of a slot table, for rendering as an interval map. */
export function runs(slots: string[]): { from: number; to: number; name: string }[] {
  const out: { from: number; to: number; name: string }[] = [];
  slots.forEach((name, i) => {
    const last = out[out.length - 1];
    if (last && last.name === name && last.to === i - 1) last.to = i;
    else out.push({ from: i, to: i, name });
  });
  return out;
}

/** Slots for `random` (contiguous blocks, one interval each) and `round-robin` (interleaved). */
export function rotationSlots(items: Weighted[], interleave: boolean): string[] {
  const reduced = reduceWeights(items);
  return interleave ? smoothRotation(reduced) : reduced.flatMap((i) => Array<string>(i.weight).fill(i.name));
}

export const HASH_BUCKETS = 1024;

/**
 * Hash buckets for source-hash methods. Buckets are first dealt to every configured member by
 * weight; a dead member's buckets are then re-dealt over the live ones, so a failure moves only
 * the clients of the member that failed and a recovery moves them back.
 */
export function hashBuckets(
  all: Weighted[],
  live: Set<string>,
  effective: Weighted[] = all,
  buckets = HASH_BUCKETS,
): string[] {
  const base = spread(
    apportion(
      all.filter((i) => i.weight > 0),
      buckets,
    ),
  );
  const survivors = effective.filter((i) => live.has(i.name) && i.weight > 0);
  if (survivors.length === 0) return base;
  const orphaned = base.filter((n) => !live.has(n)).length;
  const refill = spread(apportion(survivors, orphaned));
  let k = 0;
  return base.map((n) => (live.has(n) ? n : (refill[k++] ?? n)));
}

function spread(counts: Weighted[]): string[] {
  return smoothRotation(counts);
}
