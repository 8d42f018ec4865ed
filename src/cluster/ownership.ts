/**
 * Which live member owns which hash bucket. Pure.
 *
 * Plain rendezvous (HRW) hashing moves only the buckets that must move but leaves counts uneven;
 * capacity-capped HRW is even but cascades when the member count changes. So the assignment is
 * computed from the previous one (kept in etcd): keep every bucket whose owner is still live and
 * under its quota, and deal the rest by HRW rank among the members with room left. That is both
 * balanced (counts differ by at most one) and minimal (see `minimumMoves`).
 */
export interface Assignment {
  buckets: number;
  /** Sorted member names the assignment was computed for. */
  members: string[];
  /** Owner of each bucket, by bucket index. */
  owners: string[];
}

/** 32-bit FNV-1a over UTF-8; stable across nodes and Node versions. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The rendezvous score of a member for a bucket (murmur3's finaliser spreads FNV's low bits). */
export function hrwScore(node: string, bucket: number): number {
  let h = fnv1a(`${node}\u0000${bucket}`);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** Higher score first; the name breaks the (astronomically rare) tie so every node agrees. */
function rank(bucket: number) {
  return (a: string, b: string) => hrwScore(b, bucket) - hrwScore(a, bucket) || (a < b ? -1 : a > b ? 1 : 0);
}

export function countByOwner(owners: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const o of owners) if (o) out.set(o, (out.get(o) ?? 0) + 1);
  return out;
}

/**
 * Quota per member: ⌊B/N⌋, plus one for B mod N of them. The extra ones go to the members that
 * already hold the most (so the fewest buckets overflow), ties broken by a name hash.
 */
export function quotas(
  members: readonly string[],
  buckets: number,
  held: Map<string, number>,
): Map<string, number> {
  const n = members.length;
  const out = new Map<string, number>();
  if (n === 0) return out;
  const base = Math.floor(buckets / n);
  const extra = buckets % n;
  const order = [...members].sort(
    (a, b) => (held.get(b) ?? 0) - (held.get(a) ?? 0) || fnv1a(a) - fnv1a(b) || (a < b ? -1 : 1),
  );
  order.forEach((m, i) => out.set(m, base + (i < extra ? 1 : 0)));
  return out;
}

function normalise(members: readonly string[]): string[] {
  return [...new Set(members)].sort();
}

/** The next assignment for `members`, moving as few buckets as possible away from `prev`. */
export function rebalance(prev: Assignment | null, members: readonly string[], buckets: number): Assignment {
  if (!Number.isInteger(buckets) || buckets < 1) throw new Error(`buckets must be a positive integer`);
  const live = normalise(members);
  const liveSet = new Set(live);
  const owners =
    prev && prev.buckets === buckets && prev.owners.length === buckets
      ? prev.owners.map((o) => (liveSet.has(o) ? o : ""))
      : Array<string>(buckets).fill("");
  if (live.length === 0) return { buckets, members: [], owners: Array<string>(buckets).fill("") };

  const held = countByOwner(owners);
  const quota = quotas(live, buckets, held);
  // Over quota: give up the buckets this member ranks lowest (a deterministic choice).
  for (const m of live) {
    const mine = owners.flatMap((o, b) => (o === m ? [b] : []));
    const over = mine.length - (quota.get(m) ?? 0);
    if (over <= 0) continue;
    mine.sort((a, b) => hrwScore(m, a) - hrwScore(m, b) || a - b);
    for (const b of mine.slice(0, over)) owners[b] = "";
  }
  const room = new Map(live.map((m) => [m, (quota.get(m) ?? 0) - (countByOwner(owners).get(m) ?? 0)]));
  for (let b = 0; b < buckets; b++) {
    if (owners[b]) continue;
    const pick = [...live].sort(rank(b)).find((m) => (room.get(m) ?? 0) > 0);
    if (pick === undefined) throw new Error("rebalance: quotas do not add up"); // unreachable: Σquota = B
    owners[b] = pick;
    room.set(pick, (room.get(pick) ?? 0) - 1);
  }
  return { buckets, members: live, owners };
}

/** Buckets whose owner differs between two assignments of the same size. */
export function moves(a: Assignment | null, b: Assignment): number {
  if (!a || a.buckets !== b.buckets) return b.buckets;
  return b.owners.filter((o, i) => a.owners[i] !== o).length;
}

/**
 * The fewest buckets any balanced assignment for `members` must move away from `prev`: every
 * bucket of a departed member, plus whatever exceeds the best possible choice of quotas.
 */
export function minimumMoves(prev: Assignment, members: readonly string[]): number {
  const live = normalise(members);
  if (live.length === 0) return 0;
  const liveSet = new Set(live);
  const held = countByOwner(prev.owners.map((o) => (liveSet.has(o) ? o : "")));
  const base = Math.floor(prev.buckets / live.length);
  const extra = prev.buckets % live.length;
  // Keeping min(held, quota) per member; the +1 quotas are best spent on members holding > base.
  const counts = live.map((m) => held.get(m) ?? 0).sort((x, y) => y - x);
  const kept = counts.reduce((sum, c, i) => sum + Math.min(c, base + (i < extra ? 1 : 0)), 0);
  return prev.buckets - kept;
}

/** What plain `hash mod N` over the sorted member list would move (for comparison in bench/). */
export function moduloOwners(members: readonly string[], buckets: number): string[] {
  const live = normalise(members);
  return Array.from({ length: buckets }, (_, b) => live[b % live.length] ?? "");
}

export function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  const x = normalise(a);
  const y = normalise(b);
  return x.length === y.length && x.every((m, i) => m === y[i]);
}

/** Buckets owned by `node`, ascending. */
export function bucketsOf(a: Assignment | null, node: string): number[] {
  return a ? a.owners.flatMap((o, b) => (o === node ? [b] : [])) : [];
}
