import { parseAddr } from "../net/ip.ts";
import { backendCounterKey, SVC_BYTES, SVC_CONNS } from "../nft/names.ts";
import { listJson } from "./nft.ts";

type Count = { packets: number; bytes: number };

/**
 * The services' per-backend counters, which are elements of dynamic sets declared `counter`
 * (src/plan/nft-services.ts), under the names the daemon's status and metrics look up: the
 * backend's key for new connections, `KEY_to`/`KEY_from` for bytes. Sets that do not exist
 * (no service of that family) read as empty; a backend that never got traffic has no element.
 * Totals stay monotonic across an element's expiry (see `Totals`).
 */
export async function readServiceCounters(family: string, table: string): Promise<Map<string, Count>> {
  return totals.add(await readElements(family, table));
}

/**
 * Counters that never go back: an element that expired (no packet for the set's timeout) or was
 * made again since the last read leaves its last value as a base that later values add to.
 * (An element that expired and came back above its old value between two reads is not seen
 * as new: that takes a week without traffic and then more packets than before within one read.)
 */
export class Totals {
  private readonly seen = new Map<string, { last: Count; base: Count }>();
  constructor(private readonly max = 4_000_000) {}

  add(now: Map<string, Count>): Map<string, Count> {
    const out = new Map<string, Count>();
    for (const [key, c] of now) {
      let m = this.seen.get(key);
      if (!m) {
        if (this.seen.size >= this.max) this.seen.clear();
        this.seen.set(key, (m = { last: c, base: { packets: 0, bytes: 0 } }));
      } else if (c.packets < m.last.packets || c.bytes < m.last.bytes) m.base = sum(m.base, m.last);
      m.last = c;
      out.set(key, sum(m.base, c));
    }
    for (const [key, m] of this.seen) {
      if (now.has(key)) continue;
      m.base = sum(m.base, m.last);
      m.last = { packets: 0, bytes: 0 };
      out.set(key, m.base);
    }
    return out;
  }
}

const sum = (a: Count, b: Count): Count => ({ packets: a.packets + b.packets, bytes: a.bytes + b.bytes });
const totals = new Totals();

async function readElements(family: string, table: string): Promise<Map<string, Count>> {
  const out = new Map<string, Count>();
  const sets = ([4, 6] as const).flatMap((f) => [
    { set: SVC_CONNS[f], suffix: "" },
    { set: SVC_BYTES.to[f], suffix: "_to" },
    { set: SVC_BYTES.from[f], suffix: "_from" },
  ]);
  const lists = await Promise.all(sets.map((s) => listJson(["set", family, table, s.set]).catch(() => [])));
  lists.forEach((items, i) => {
    const suffix = sets[i]?.suffix ?? "";
    for (const it of items) for (const [key, c] of elementCounters(it)) out.set(key + suffix, c);
  });
  return out;
}

/** `{"set": {…, "elem": [{"elem": {"val": {"concat": [VIP, proto, port, addr, port]}, "counter": …}}]}}`. Pure. */
export function elementCounters(item: Record<string, unknown>): [string, Count][] {
  const set = item.set as { elem?: unknown[] } | undefined;
  const out: [string, Count][] = [];
  for (const raw of set?.elem ?? []) {
    const e = (raw as { elem?: { val?: { concat?: unknown[] }; counter?: Partial<Count> } }).elem;
    const f = e?.val?.concat;
    if (!f || f.length !== 5) continue;
    const vip = parseAddr(String(f[0]));
    const addr = parseAddr(String(f[3]));
    if (!vip || !addr) continue;
    const key = backendCounterKey(vip.family, vip.text, String(f[1]), Number(f[2]), addr.text, Number(f[4]));
    out.push([key, { packets: e.counter?.packets ?? 0, bytes: e.counter?.bytes ?? 0 }]);
  }
  return out;
}
