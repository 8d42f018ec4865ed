import type { Elem, NSet, Ruleset, Table } from "./fake.ts";
import type { Rule } from "./rule.ts";
import type { Atom, Val, VType } from "./values.ts";

/**
 * What differs between two rulesets, object by object: the kernel's (parsed from `nft list`) and
 * the one nflb would install. Both sides go through the same parser, so the kernel's own way of
 * printing (element order, quoting, `&`/`|` for `and`/`or`) makes no difference. Pure.
 */
export interface RulesetChange {
  /** `+` only wanted (apply adds it), `-` only in the kernel (apply removes it), `~` both, differing. */
  op: "+" | "-" | "~";
  /** `table inet nflb`, `map inet nflb split4`, `chain inet nflb decide`, … */
  object: string;
  /** What differs, in words or as the element, for people. */
  detail: string;
}

export interface CompareOptions {
  /** Sets whose elements nflb does not own (the packet path's sticky maps, the cluster agent's buckets). */
  foreignElements?: (table: string, set: string) => boolean;
}

export function compareRulesets(live: Ruleset, want: Ruleset, opts: CompareOptions = {}): RulesetChange[] {
  const out: RulesetChange[] = [];
  for (const key of union(live.tables.keys(), want.tables.keys())) {
    const l = live.tables.get(key);
    const w = want.tables.get(key);
    if (!l || !w) {
      out.push({ op: w ? "+" : "-", object: `table ${key}`, detail: w ? "missing" : "not wanted" });
      continue;
    }
    compareTables(key, l, w, opts, out);
  }
  return out;
}

function compareTables(key: string, l: Table, w: Table, opts: CompareOptions, out: RulesetChange[]): void {
  for (const name of union(l.sets.keys(), w.sets.keys())) {
    const ls = l.sets.get(name);
    const ws = w.sets.get(name);
    const kind = (ls ?? ws)?.map ? "map" : "set";
    const object = `${kind} ${key} ${name}`;
    if (!ls || !ws) {
      out.push({ op: ws ? "+" : "-", object, detail: ws ? "missing" : "not wanted" });
      continue;
    }
    const shape = (s: NSet) => `${s.key.join(" . ")}${s.data ? ` : ${s.data}` : ""} ${s.flags.join(",")}`;
    if (shape(ls) !== shape(ws)) {
      out.push({ op: "~", object, detail: `declared as ${shape(ls)}, wanted ${shape(ws)}` });
      continue;
    }
    if (opts.foreignElements?.(key, name)) continue;
    compareElements(object, ls, ws, out);
  }
  for (const name of union(l.chains.keys(), w.chains.keys())) {
    const lc = l.chains.get(name);
    const wc = w.chains.get(name);
    const object = `chain ${key} ${name}`;
    if (!lc || !wc) {
      out.push({ op: wc ? "+" : "-", object, detail: wc ? "missing" : "not wanted" });
      continue;
    }
    const ln = lc.rules.map(ruleShape);
    const wn = wc.rules.map(ruleShape);
    if (ln.length !== wn.length) {
      out.push({ op: "~", object, detail: `${lc.rules.length} rules, wanted ${wc.rules.length}` });
      continue;
    }
    ln.forEach((s, i) => {
      if (s !== wn[i])
        out.push({
          op: "~",
          object,
          detail: `rule ${i + 1}: "${lc.rules[i]?.text}", wanted "${wc.rules[i]?.text}"`,
        });
    });
  }
  for (const name of union(l.counters, w.counters)) {
    if (l.counters.has(name) !== w.counters.has(name))
      out.push({
        op: w.counters.has(name) ? "+" : "-",
        object: `counter ${key} ${name}`,
        detail: w.counters.has(name) ? "missing" : "not wanted",
      });
  }
}

function compareElements(object: string, ls: NSet, ws: NSet, out: RulesetChange[]): void {
  const text = (e: Elem) => elementKey(ls, e);
  const lmap = new Map(ls.elements.map((e) => [text(e), e]));
  const wmap = new Map(ws.elements.map((e) => [text(e), e]));
  for (const k of union(lmap.keys(), wmap.keys())) {
    const le = lmap.get(k);
    const we = wmap.get(k);
    if (!le || !we) {
      const e = (le ?? we) as Elem;
      out.push({ op: we ? "+" : "-", object, detail: `element ${k}${valueText(ls, e)}` });
    } else if (valueText(ls, le) !== valueText(ws, we)) {
      out.push({ op: "~", object, detail: `element ${k}${valueText(ls, le)}, wanted${valueText(ws, we)}` });
    }
  }
}

/**
 * A rule as what it refers to and decides: the sets and maps it looks up, the chains it jumps to,
 * its verdict. The kernel prints expressions its own way (it folds `and … or …`, drops implied
 * `meta nfproto`), so comparing text would report differences that are not there; a rule pointed
 * at another set, chain or verdict by hand is caught.
 */
function ruleShape(r: Rule): string {
  const refs = (x: unknown): string[] => {
    if (Array.isArray(x)) return x.flatMap(refs);
    if (!x || typeof x !== "object") return [];
    const o = x as Record<string, unknown>;
    const own: string[] = [];
    if (typeof o.named === "string") own.push(`@${o.named}`);
    if (o.k === "setop" && typeof o.set === "string") own.push(`${String(o.op)} @${o.set}`);
    if (o.k === "verdict") own.push(`${String(o.v)}${typeof o.chain === "string" ? ` ${o.chain}` : ""}`);
    if (o.k === "nat") own.push(`${String(o.kind)}${typeof o.to === "string" ? ` ${o.to}` : ""}`);
    return [...own, ...Object.values(o).flatMap(refs)];
  };
  return refs(r.stmts).join(" ");
}

function elementKey(s: NSet, e: Elem): string {
  return e.key.map((a, i) => atomText(a, s.key[i])).join(" . ");
}

function valueText(s: NSet, e: Elem): string {
  const v = e.value;
  if (!v) return "";
  if ("verdict" in v) return ` : ${v.verdict}${v.chain ? ` ${v.chain}` : ""}`;
  if ("vals" in v) return ` : ${v.vals.map((x, i) => valText(x, s.dataParts?.[i])).join(" . ")}`;
  return ` : ${valText(v.val, s.data)}`;
}

function atomText(a: Atom, t: VType | undefined): string {
  if (a.lo === a.hi) return valText(a.lo, t);
  const bits = t === "ipv4" ? 32 : t === "ipv6" ? 128 : 0;
  if (bits && typeof a.lo === "bigint" && typeof a.hi === "bigint") {
    // An address range that is a prefix is shown as one, as it was written.
    const size = a.hi - a.lo + 1n;
    const host = size.toString(2).length - 1;
    if (size === 1n << BigInt(host) && a.lo % size === 0n) return `${valText(a.lo, t)}/${bits - host}`;
  }
  return `${valText(a.lo, t)}-${valText(a.hi, t)}`;
}

function valText(v: Val, t: VType | undefined): string {
  if (typeof v === "string") return v;
  if (t === "ipv4") return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join(".");
  if (t === "ipv6") {
    const parts: string[] = [];
    for (let s = 112n; s >= 0n; s -= 16n) parts.push(((v >> s) & 0xffffn).toString(16));
    return parts
      .join(":")
      .replace(/\b(?:0:){2,}/, ":")
      .replace(/^0::/, "::");
  }
  return v.toString();
}

function union<T>(a: Iterable<T>, b: Iterable<T>): T[] {
  return [...new Set([...a, ...b])];
}
