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

/**
 * `conntrack -D -m MARK/MASK` for IPv4 and IPv6 (or only `family`: one family of the uplink went
 * down); returns how many entries went.
 */
export async function deleteConntrackByMark(mark: number, mask: number, family?: 4 | 6): Promise<number> {
  const m = markArg(mark, mask);
  let deleted = 0;
  for (const fam of family ? [`ipv${family}`] : ["ipv4", "ipv6"]) {
    for (let attempt = 1; ; attempt++) {
      const r = await exec(["conntrack", "-D", "-f", fam, "-m", m], { timeoutMs: 10_000 });
      const out = `${r.stdout}\n${r.stderr}`;
      const n = /(\d+) flow entries have been deleted/.exec(out);
      // An entry that ends between conntrack's dump and its delete stops the whole run
      // ("such conntrack doesn't exist"), leaving the rest: run it again for those (bounded).
      if (!n && /doesn't exist/.test(out) && attempt < 5) continue;
      // conntrack exits 1 when nothing matched; that is success here.
      if (r.code !== 0 && !n)
        throw new Error(`conntrack -D -f ${fam} -m ${m} exited ${r.code}: ${out.trim()}`);
      deleted += n ? Number(n[1]) : 0;
      break;
    }
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

/** The distinct non-zero marks under `mask` in `conntrack -L` output. */
export function marksIn(text: string, mask: number): Set<number> {
  const out = new Set<number>();
  for (const m of text.matchAll(/\bmark=(\d+)/g)) {
    const v = (Number(m[1]) & mask) >>> 0;
    if (v) out.add(v);
  }
  return out;
}

/** Which marks under `mask` conntrack entries carry now (IPv4 and IPv6). */
export async function conntrackMarks(mask: number): Promise<Set<number>> {
  const out = new Set<number>();
  for (const fam of ["ipv4", "ipv6"]) {
    const r = await exec(["conntrack", "-L", "-f", fam], { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`conntrack -L -f ${fam} exited ${r.code}: ${r.stderr.trim()}`);
    for (const v of marksIn(r.stdout, mask)) out.add(v);
  }
  return out;
}

/** One live element of a sticky map: its key as nft text, the mark it holds, what is left of its life. */
export interface StickyElement {
  key: string;
  mark: number;
  /** Milliseconds until it expires (nft reports whole seconds); null without a timeout. */
  expiresMs: number | null;
}

/** The elements of a map as `nft -j list map` gives them (keys of a shape we do not write are left out). */
export function stickyElements(items: Record<string, unknown>[]): StickyElement[] {
  const out: StickyElement[] = [];
  for (const it of items) {
    const map = it.map as { elem?: unknown[] } | undefined;
    for (const e of map?.elem ?? []) {
      if (!Array.isArray(e) || e.length !== 2) continue;
      const [k, v] = e as [unknown, unknown];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffffffff) continue;
      const wrapped = typeof k === "object" && k !== null && "elem" in k;
      const inner = wrapped ? (k as { elem: { val: NftVal; expires?: unknown } }).elem : { val: k as NftVal };
      const key = keyText(inner.val);
      if (key === null) continue;
      const exp = "expires" in inner ? inner.expires : undefined;
      const expiresMs = typeof exp === "number" && Number.isFinite(exp) && exp >= 0 ? exp * 1000 : null;
      out.push({ key, mark: v >>> 0, expiresMs });
    }
  }
  return out;
}

/** The live elements of nflb's sticky maps, by map; a map that does not exist has none. */
export async function readStickyMaps(maps: string[]): Promise<Map<string, StickyElement[]>> {
  const out = new Map<string, StickyElement[]>();
  for (const name of maps) {
    if (!MAP_NAME.test(name)) throw new Error(`bad map name ${name}`);
    out.set(name, stickyElements(await listJson(["map", FAMILY, TABLE, name])));
  }
  return out;
}
