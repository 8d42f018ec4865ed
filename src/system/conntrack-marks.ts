import { exec } from "./exec.ts";
import { listJson, nftApply } from "./nft.ts";
import { FAMILY, TABLE } from "../nft/names.ts";

/**
 * Forgetting one uplink's connections after it went down: its conntrack entries (selected by
 * mark under nflb's mask, never the whole table) and the sticky-map entries that point at it.
 */

const MAP_NAME = /^[a-z][a-z0-9_]{0,62}$/;

function markArg(mark: number, mask: number): string {
  if (!Number.isInteger(mark) || !Number.isInteger(mask) || mark < 0 || mask <= 0 || mark > 0xffffffff)
    throw new Error(`bad conntrack mark ${mark}/${mask}`);
  return `0x${(mark >>> 0).toString(16)}/0x${(mask >>> 0).toString(16)}`;
}

/** `conntrack -D -m MARK/MASK` for IPv4 and IPv6; returns how many entries went. */
export async function deleteConntrackByMark(mark: number, mask: number): Promise<number> {
  const m = markArg(mark, mask);
  let deleted = 0;
  for (const fam of ["ipv4", "ipv6"]) {
    const r = await exec(["conntrack", "-D", "-f", fam, "-m", m], { timeoutMs: 10_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    const n = /(\d+) flow entries have been deleted/.exec(out);
    // conntrack exits 1 when nothing matched; that is success here.
    if (r.code !== 0 && !n) throw new Error(`conntrack -D -f ${fam} -m ${m} exited ${r.code}: ${out.trim()}`);
    deleted += n ? Number(n[1]) : 0;
  }
  return deleted;
}

type NftVal = string | number | { concat: (string | number)[] } | Record<string, unknown>;

/** One element key as nft text (`a . b` for concatenations), or null for a shape we do not write. */
export function keyText(val: NftVal): string | null {
  const atom = (v: unknown) =>
    typeof v === "number" || (typeof v === "string" && /^[0-9a-fA-F:.]+$/.test(v)) ? String(v) : null;
  if (typeof val === "object" && val !== null && "concat" in val && Array.isArray(val.concat)) {
    const parts = val.concat.map(atom);
    return parts.every((p) => p !== null) ? parts.join(" . ") : null;
  }
  return atom(val);
}

/** Keys of a map's elements whose value, under `mask`, is `mark`. Parses `nft -j list map`. */
export function keysWithMark(items: Record<string, unknown>[], mark: number, mask: number): string[] {
  const out: string[] = [];
  for (const it of items) {
    const map = it.map as { elem?: unknown[] } | undefined;
    for (const e of map?.elem ?? []) {
      if (!Array.isArray(e) || e.length !== 2) continue;
      const [k, v] = e as [unknown, unknown];
      if (typeof v !== "number" || (v & mask) >>> 0 !== mark >>> 0) continue;
      // Elements with a timeout or counter are wrapped as { elem: { val, expires } }.
      const inner =
        typeof k === "object" && k !== null && "elem" in k ? (k as { elem: { val: NftVal } }).elem.val : k;
      const text = keyText(inner as NftVal);
      if (text !== null) out.push(text);
    }
  }
  return out;
}

/** Delete the elements of nflb's sticky maps that send clients to `mark`; returns how many went. */
export async function purgeStickyMark(maps: string[], mark: number, mask: number): Promise<number> {
  let purged = 0;
  for (const name of maps) {
    if (!MAP_NAME.test(name)) throw new Error(`bad map name ${name}`);
    const keys = keysWithMark(await listJson(["map", FAMILY, TABLE, name]), mark, mask);
    if (keys.length === 0) continue;
    const ref = `${FAMILY} ${TABLE} ${name}`;
    try {
      await nftApply(`delete element ${ref} { ${keys.join(", ")} }\n`);
    } catch {
      // An element expired between listing and deleting fails the whole batch: go one by one.
      for (const k of keys) await nftApply(`delete element ${ref} { ${k} }\n`).catch(() => undefined);
    }
    purged += keys.length;
  }
  return purged;
}
