import type * as z from "zod";

/** Edit distance (insertions, deletions, substitutions, adjacent swaps), for "did you mean". */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      let best = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, (d[i - 2]?.[j - 2] ?? 0) + 1);
      row[j] = best;
    }
  }
  return d[a.length]?.[b.length] ?? Math.max(a.length, b.length);
}

/**
 * The candidate closest to `word`, when it is close enough to be a typo: within a third of the
 * word's length (at least 1, at most 3 edits), or equal once case, `_` and `-` are ignored.
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_ ]/g, "");
  const same = candidates.find((c) => norm(c) === norm(word));
  if (same !== undefined && same !== word) return same;
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return bestD <= limit ? best : undefined;
}

type Def = {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  valueType?: z.ZodType;
  element?: z.ZodType;
  options?: z.ZodType[];
};

const defOf = (s: z.ZodType): Def => s._zod.def as unknown as Def;

/** Strip defaults, optionals, nullables and transforms down to the schema that holds the shape. */
export function unwrap(s: z.ZodType): z.ZodType {
  for (let i = 0; i < 20; i++) {
    const d = defOf(s);
    if (d.innerType) s = d.innerType;
    else if (d.type === "pipe" && d.in) s = d.in;
    else break;
  }
  return s;
}

/** The keys an object at `path` allows (names and list indexes are walked through). */
export function keysAt(root: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s: z.ZodType | undefined = root;
  for (const p of path) {
    if (!s) return [];
    s = child(unwrap(s), p);
  }
  if (!s) return [];
  const objects = [unwrap(s), ...(defOf(unwrap(s)).options ?? []).map(unwrap)];
  return objects.flatMap((o) => Object.keys(defOf(o).shape ?? {}));
}

function child(s: z.ZodType, p: PropertyKey): z.ZodType | undefined {
  const d = defOf(s);
  if (d.shape && typeof p === "string") return d.shape[p];
  if (d.valueType) return d.valueType;
  if (d.element) return d.element;
  for (const o of d.options ?? []) {
    const c = child(unwrap(o), p);
    if (c) return c;
  }
  return undefined;
}
