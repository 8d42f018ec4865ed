import {
  objectKey,
  segmentsOf,
  tableRef,
  type Element,
  type NftChain,
  type NftObject,
  type NftSet,
  type NftTable,
  type Ruleset,
} from "./model.ts";
import { baseSpec, elementText, objectLines, setDeclaration, tableReplace } from "./serialize.ts";

/**
 * (model the kernel holds, model wanted) → the smallest nft transaction that turns one into the
 * other, as text for one `nft -f` (so it stays atomic). Per table, in an order that respects
 * references:
 *
 *   1. new sets, maps, counters and chains (with their rules and elements), in one `table {…}`
 *      block, where nft resolves references among them;
 *   2. chains whose rules changed: `flush chain` + `add rule` (their new rules may use step 1);
 *   3. elements of sets and maps that stayed: `delete element` of those that went or changed,
 *      then the set declared again in a `table {…}` block with the elements to add (a changed
 *      map value is both); or `flush` + the whole set when most elements are new, when the set
 *      merges intervals (a merged element cannot be deleted by its old bounds), or when nft
 *      would read back more elements for a deletion than the set holds (see dumpCost);
 *   4. objects that went: their chains flushed first (dropping the rules' references), then sets
 *      and maps, chains, counters deleted.
 *
 * Elements the packet path writes (`owner: "packet"`, sticky maps) or another writer owns
 * (`owner: "external"`) are never touched. A change nft cannot make in place (a set's type, flags,
 * timeout or size; a base chain's hook or priority; the table's comment) replaces that table:
 * `replaced` says which and why.
 */
export interface NftDiff {
  /** The transaction; "" when the models are equal. */
  script: string;
  replaced: { table: string; reason: string }[];
}

/** Keys per `delete element` line. */
const CHUNK = 512;

export function diff(old: Ruleset, want: Ruleset): NftDiff {
  const out: string[] = [];
  const replaced: NftDiff["replaced"] = [];
  const oldTables = new Map(old.tables.map((t) => [tableRef(t), t]));
  for (const t of want.tables) {
    const ref = tableRef(t);
    const before = oldTables.get(ref);
    oldTables.delete(ref);
    if (!before) {
      tableReplace(t, out);
      continue;
    }
    const ops: string[] = [];
    const reason = before.comment !== t.comment ? "table comment changed" : tableOps(before, t, ops);
    if (reason) {
      replaced.push({ table: ref, reason });
      tableReplace(t, out);
    } else for (const line of ops) out.push(line);
  }
  for (const ref of oldTables.keys()) out.push(`delete table ${ref}`);
  return { script: out.length ? out.join("\n") + "\n" : "", replaced };
}

/** Appends the in-place operations to `out`; returns why the table must be replaced instead, if it must. */
function tableOps(old: NftTable, want: NftTable, out: string[]): string | null {
  const ref = tableRef(want);
  // Builders hand back the very same objects for what did not change (a million of them at 5,000
  // services × 50 backends). An object found at the same place, counted from the start or from
  // the end (objects added or removed in between shift the rest), is skipped by identity; only the
  // others are compared by name. Names are unique in a table, so a skipped object's name cannot
  // appear among the others.
  const [was, now] = [old.objects, want.objects];
  const same = new Uint8Array(now.length);
  const kept = new Uint8Array(was.length);
  for (let i = 0; i < Math.min(was.length, now.length); i++) if (was[i] === now[i]) same[i] = kept[i] = 1;
  const shift = now.length - was.length;
  if (shift !== 0)
    for (let i = Math.max(0, -shift); i < was.length && i + shift < now.length; i++)
      if (!kept[i] && !same[i + shift] && was[i] === now[i + shift]) same[i + shift] = kept[i] = 1;
  const before = new Map<string, NftObject>();
  for (let i = 0; i < was.length; i++)
    if (!kept[i]) before.set(objectKey(was[i] as NftObject), was[i] as NftObject);
  const middle: NftObject[] = [];
  const added: NftObject[] = [];
  const changedChains: NftChain[] = [];
  const elementOps: string[] = [];
  const additions: NftSet[] = [];
  const changedSets = new Set<string>();
  let cost: number | undefined;
  const dump = () => (cost ??= dumpCost(old));
  const restarts: NftChain[] = [];
  for (let i = 0; i < now.length; i++) {
    const o = now[i] as NftObject;
    // A skipped chain that walks a map still restarts when that map changed.
    if (!same[i]) middle.push(o);
    else if (o.kind === "chain" && o.restartWith) restarts.push(o);
  }

  for (const o of middle) {
    const key = objectKey(o);
    const b = before.get(key);
    before.delete(key);
    if (!b) {
      added.push(o);
      continue;
    }
    if (b.kind !== o.kind) return `${key} changed from ${b.kind} to ${o.kind}`;
    if (o.kind === "chain" && b.kind === "chain") {
      if (baseSpec(o) !== baseSpec(b)) return `chain ${o.name} changed its hook`;
      if (!sameList(o.rules, b.rules)) changedChains.push(o);
      else if (o.restartWith) restarts.push(o);
    } else if ((o.kind === "set" || o.kind === "map") && (b.kind === "set" || b.kind === "map")) {
      if (!sameList(setDeclaration(o), setDeclaration(b)) || (o.owner ?? "model") !== (b.owner ?? "model"))
        return `${o.kind} ${o.name} changed its declaration`;
      if ((o.owner ?? "model") === "model" && elementsOps(ref, b, o, dump, elementOps, additions))
        changedSets.add(o.name);
    }
  }
  for (const c of restarts) if (c.restartWith && changedSets.has(c.restartWith)) changedChains.push(c);
  const gone = [...before.values()];

  if (added.length) {
    out.push(`table ${ref} {`);
    for (const o of added) objectLines(o, out);
    out.push("}");
  }
  for (const c of changedChains) {
    out.push(`flush chain ${ref} ${c.name}`);
    for (const r of c.rules) out.push(`add rule ${ref} ${c.name} ${r}`);
  }
  for (const line of elementOps) out.push(line);
  if (additions.length) {
    out.push(`table ${ref} {`);
    for (const a of additions) objectLines(a, out);
    out.push("}");
  }
  for (const o of gone) if (o.kind === "chain") out.push(`flush chain ${ref} ${o.name}`);
  for (const o of gone)
    if (o.kind === "set" || o.kind === "map") out.push(`delete ${o.kind} ${ref} ${o.name}`);
  for (const o of gone) if (o.kind === "chain") out.push(`delete chain ${ref} ${o.name}`);
  for (const o of gone) if (o.kind === "counter") out.push(`delete counter ${ref} ${o.name}`);
  return null;
}

/**
 * Elements nft 1.0.6 reads back from the kernel before any `add element`/`delete element` in this
 * table: those of every single-field interval set (cache.c, NFT_CACHE_SETELEM_MAYBE), 10,000 rule
 * prefixes included. A `table {…}` block that declares the set again with new elements, and a
 * `flush`, read none; so additions are written that way, and deletions by key only when that
 * costs less than writing the set again.
 */
function dumpCost(t: NftTable): number {
  let n = 0;
  for (const o of t.objects)
    if ((o.kind === "set" || o.kind === "map") && o.flags?.includes("interval") && !isConcat(o))
      n += o.elements.length;
  return n;
}

function isConcat(s: NftSet): boolean {
  const key = (s.typeof ?? s.type ?? "").split(" : ")[0] ?? "";
  return key.includes(" . ");
}

/**
 * Appends the flushes and deletions that turn `old`'s elements into `want`'s to `out`, and the
 * set with the elements to add to `additions`; true when anything changed.
 */
function elementsOps(
  ref: string,
  old: NftSet,
  want: NftSet,
  dump: () => number,
  out: string[],
  additions: NftSet[],
): boolean {
  if (old.elements === want.elements) return false;
  // Both made of parts (a group map's members): only the parts that are not the very same arrays
  // can differ. Keys are unique in a set, so one in a kept part is in no changed part on either side.
  const [from, to] = changedParts(old, want) ?? [old.elements, want.elements];
  if (sameElements(from, to)) return false;
  const was = new Map(from.map((e) => [e.key, elementText(e)]));
  const adds: Element[] = [];
  for (const e of to) {
    const text = elementText(e);
    if (was.get(e.key) === text) was.delete(e.key);
    else adds.push(e);
  }
  // What is left in `was` is gone or changed: deleted by key (a changed value is re-added).
  const dels = [...was.keys()];
  // Most elements new (or none left), merged intervals, or deletions that would make nft read
  // back more than the whole set: flush it and write it again.
  const whole =
    want.autoMerge ||
    adds.length * 2 > want.elements.length ||
    want.elements.length === 0 ||
    (dels.length > 0 && dump() > want.elements.length);
  if (whole) {
    out.push(`flush ${want.kind} ${ref} ${want.name}`);
    if (want.elements.length) additions.push(want);
    return true;
  }
  for (let i = 0; i < dels.length; i += CHUNK)
    out.push(`delete element ${ref} ${want.name} { ${dels.slice(i, i + CHUNK).join(", ")} }`);
  if (adds.length) additions.push({ ...want, elements: adds });
  return true;
}

/** The elements of the parts that differ, old and wanted, when both sets are made of as many parts. */
function changedParts(old: NftSet, want: NftSet): [Element[], Element[]] | null {
  const a = segmentsOf(old);
  const b = segmentsOf(want);
  if (!a || !b || a.length !== b.length) return null;
  const from: Element[] = [];
  const to: Element[] = [];
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as readonly Element[];
    const y = b[i] as readonly Element[];
    if (x === y) continue;
    for (const e of x) from.push(e);
    for (const e of y) to.push(e);
  }
  return [from, to];
}

/**
 * All elements of one set or map replaced atomically, as a transaction of its own: for a writer
 * that owns a set's elements (`owner: "external"`), e.g. the cluster agent's buckets, whose
 * timeouts restart with every write. `set` is the set as the model declares it, with the new
 * elements (written as a block, like the diff's additions, so nft reads no element back).
 */
export function replaceElements(tableRef: string, set: NftSet): string {
  const out = [`flush ${set.kind} ${tableRef} ${set.name}`];
  if (set.elements.length) {
    out.push(`table ${tableRef} {`);
    objectLines(set, out);
    out.push("}");
  }
  return out.join("\n") + "\n";
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameElements(a: readonly Element[], b: readonly Element[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as Element;
    const y = b[i] as Element;
    if (x === y) continue;
    if (x.key !== y.key || x.value !== y.value || x.timeout !== y.timeout) return false;
  }
  return true;
}
