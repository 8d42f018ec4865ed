import { randomBytes } from "node:crypto";
import { parseDocument } from "yaml";

// Long prefix lists (a rule with 10,000 destinations) make up nearly all of a big config, and the
// `yaml` package spends ~1 ms per 30 of their lines building nodes with positions for them (over
// 300 ms for 10,000 in a fresh process). This reads such lists directly: every run of block
// sequence items that are plain address-like scalars is cut out of the text, the rest goes through
// `yaml` as usual, and the runs are put back into the lists they came from. It only ever returns
// what `yaml` itself would (see the checks below, and the unit test comparing the two); when it
// cannot be sure it returns undefined and the caller parses the whole text the ordinary way. The
// values are read without positions: the caller parses again with positions only to report an error.

/** Runs shorter than this are left to `yaml` (the saving would not pay for the bookkeeping). */
export const MIN_RUN = 16;

// `INDENT- VALUE [# comment]`, where VALUE only has characters of addresses and prefixes and has a
// `/`, a `:` (not last) or two dots: `yaml`'s core schema reads any such plain scalar as a string
// (its numbers have at most one dot and no `/` or `:`; null, booleans, .inf and .nan have letters
// outside [a-f]), and none of these characters starts an anchor, alias, tag, quote or flow collection.
const ITEM = /^( *)- +([0-9A-Fa-f.:/]+)(?: +#[^\n]*)? *\r?$/;
const STRINGY = /\/|:.|\..*\./;

interface Run {
  indent: string;
  values: string[];
}

/** The parsed YAML of `text` (like `parseDocument(text).toJS()`), or undefined when the fast path does not apply. */
export function fastYaml(text: string, opts: { maxAliasCount: number }): unknown {
  // A %YAML 1.1 directive changes how plain scalars resolve.
  if (/^%/m.test(text)) return undefined;
  const lines = text.split("\n");
  const runs: Run[] = [];
  const kept: string[] = [];
  const nonce = randomBytes(8).toString("hex");
  const tag = `nflb-fast-${nonce}-`;
  const mark = (k: number) => `${tag}${k}`;
  for (let i = 0; i < lines.length;) {
    let j = i;
    let indent: string | undefined;
    const values: string[] = [];
    for (; j < lines.length; j++) {
      const m = ITEM.exec(lines[j] as string);
      if (!m || (indent !== undefined && m[1] !== indent) || !STRINGY.test(m[2] as string)) break;
      indent ??= m[1];
      values.push(m[2] as string);
    }
    if (indent !== undefined && values.length >= MIN_RUN) {
      kept.push(`${indent}- ${mark(runs.length)}`);
      runs.push({ indent, values });
      i = j;
    } else {
      kept.push(lines[i] as string);
      i++;
    }
  }
  if (runs.length === 0) return undefined;
  const doc = parseDocument(kept.join("\n"), { uniqueKeys: true });
  if (doc.errors.length > 0) return undefined;
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: opts.maxAliasCount });
  } catch {
    return undefined;
  }
  // Each mark must come back exactly once, as an item of a list, and nowhere else (inside a block
  // scalar or a multi-line string the lines were text, not items: give up then).
  const found: { list: unknown[]; at: number; k: number }[] = [];
  let stray = false;
  const walk = (v: unknown): void => {
    if (typeof v === "string") {
      if (v.includes(nonce)) stray = true;
    } else if (Array.isArray(v)) {
      v.forEach((item, at) => {
        const k = typeof item === "string" && item.startsWith(tag) ? Number(item.slice(tag.length)) : -1;
        if (Number.isInteger(k) && k >= 0 && k < runs.length && item === mark(k))
          found.push({ list: v, at, k });
        else walk(item);
      });
    } else if (v && typeof v === "object") {
      for (const [key, child] of Object.entries(v)) {
        if (key.includes(nonce)) stray = true;
        walk(child);
      }
    }
  };
  walk(raw);
  if (stray || found.length !== runs.length || new Set(found.map((f) => f.k)).size !== runs.length)
    return undefined;
  // Splice from the last place in each list, so earlier indexes stay valid.
  found.sort((a, b) => b.at - a.at);
  for (const f of found) {
    // Not splice(at, 1, ...values): a spread of 100,000 arguments can overflow the stack.
    const tail = f.list.splice(f.at);
    tail.shift();
    for (const v of (runs[f.k] as Run).values) f.list.push(v);
    for (const v of tail) f.list.push(v);
  }
  return raw;
}
