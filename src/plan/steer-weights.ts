import type { Config } from "../config/schema.ts";
import type { Health } from "./types.ts";

/**
 * `metered: true` and `balance.method: overflow` as effective weights, fed to the unchanged split
 * planning (a weight of 0 keeps an uplink out of the balance; rules that name it still use it).
 * Pure: the daemon calls it with the measured spill state, `apply` with none (everything fills).
 *
 * - The balance's pool is the live unmetered uplinks; only when none is live, the metered ones.
 *   Outside the pool every weight is 0.
 * - Overflow: the pool's weighted uplinks in tiers by priority (explicit, else the YAML position);
 *   new connections go to the first tier that has an uplink below its threshold, to those
 *   uplinks by weight. When every one is over, all of them share, by capacity.
 * - Weight-0 uplinks of the pool (backups) get 1 when nothing weighted is left in it, as the
 *   split does, so that the split's own fallback never reaches past the pool to a metered one.
 */
export function steerWeights(c: Config, health: Health, spilling: ReadonlySet<string> = new Set()): Health {
  const ups = Object.entries(c.uplinks ?? {});
  const overflow = c.balance.method === "overflow";
  if (!overflow && !ups.some(([, u]) => u.metered)) return health;
  const weightOf = (n: string) => health[n]?.weight ?? c.uplinks?.[n]?.weight ?? 0;
  const live = ups.filter(([n]) => health[n]?.up === true);
  const unmetered = live.filter(([, u]) => !u.metered);
  let pool = unmetered.length > 0 ? unmetered : live;
  const weighted = pool.filter(([n]) => weightOf(n) > 0);
  const weights = new Map<string, number>();
  if (weighted.length === 0) for (const [n] of pool) weights.set(n, 1);
  else if (!overflow) for (const [n] of weighted) weights.set(n, weightOf(n));
  else {
    pool = weighted;
    const rank = new Map(ups.map(([n, u], i) => [n, u.priority ?? i + 1]));
    const tiers = [...new Set(pool.map(([n]) => rank.get(n) ?? 0))].sort((a, b) => a - b);
    const filling = tiers
      .map((t) => pool.filter(([n]) => rank.get(n) === t && !spilling.has(n)))
      .find((tier) => tier.length > 0);
    if (filling) for (const [n] of filling) weights.set(n, weightOf(n));
    else {
      // Everything is over its threshold: share by what each can carry.
      const cap = (n: string) => {
        const k = c.uplinks?.[n]?.capacity;
        return k?.down ?? k?.up ?? 0;
      };
      const most = Math.max(...pool.map(([n]) => cap(n)));
      for (const [n] of pool) weights.set(n, most > 0 ? Math.max(1, Math.round((100 * cap(n)) / most)) : 1);
    }
  }
  const out: Health = {};
  for (const [n, h] of Object.entries(health)) out[n] = { ...h, weight: weights.get(n) ?? 0 };
  return out;
}

/** Where overflow fills first: priority, then YAML order. */
export function overflowOrder(c: Config): string[] {
  const ups = Object.entries(c.uplinks ?? {});
  const rank = new Map(ups.map(([n, u], i) => [n, u.priority ?? i + 1]));
  return ups
    .map(([n], i) => ({ n, i }))
    .sort((a, b) => (rank.get(a.n) ?? 0) - (rank.get(b.n) ?? 0) || a.i - b.i)
    .map((x) => x.n);
}
