import { objectKey, tableRef, type NftChain, type NftSet, type NftTable, type Ruleset } from "./model.ts";
import { baseSpec, elementText, objectLines, setDeclaration } from "./serialize.ts";

/**
 * `nflb apply` with the kernel already holding (most of) what it wants: the transaction that
 * turns the live tables, as `nft list table` prints them, into the wanted model — empty when
 * they are the same — or null when only a full replace will do (an object missing or extra, a
 * declaration or hook that differs, a listing this does not read). Pure.
 *
 * The kernel prints what it holds its own way, so the comparison is of canonical forms, each
 * step of which keeps the meaning (see canonicalRule); anything it does not recognise as the
 * same is rewritten: a chain whose rules differ is flushed and refilled, a set whose elements
 * differ is flushed and written again. So the result is exact whatever the comparison misses,
 * and a table nobody touched costs no transaction at all (a full replace of 10,000 prefixes
 * costs nft ~85 ms of CPU plus the kernel's RCU grace period for the old table).
 */
export function liveTransaction(want: Ruleset, live: ReadonlyMap<string, string | null>): string | null {
  const out: string[] = [];
  for (const t of want.tables) {
    const text = live.get(tableRef(t));
    if (text === undefined || text === null) return null;
    const l = parseListing(text);
    if (!l || !tableOps(t, l, out)) return null;
  }
  for (const a of want.absent) {
    const text = live.get(tableRef(a));
    if (text === undefined) return null;
    if (text !== null) out.push(`delete table ${tableRef(a)}`);
  }
  return out.length ? out.join("\n") + "\n" : "";
}

interface LiveObject {
  kind: "set" | "map" | "chain" | "counter";
  name: string;
  /** Declaration lines of a set or map; the hook line of a base chain. */
  head: string[];
  elements: string[];
  rules: string[];
}

interface LiveTable {
  comment?: string;
  objects: Map<string, LiveObject>;
}

/** Appends the ops that make `live` equal `want`; false when only a full replace will do. */
function tableOps(want: NftTable, live: LiveTable, out: string[]): boolean {
  const ref = tableRef(want);
  if ((want.comment ?? undefined) !== live.comment) return false;
  if (want.objects.length !== live.objects.size) return false;
  const changedSets = new Set<string>();
  const sets: NftSet[] = [];
  const chains: NftChain[] = [];
  for (const o of want.objects) {
    const l = live.objects.get(objectKey(o));
    if (!l || l.kind !== o.kind) return false;
    if (o.kind === "counter") continue;
    if (o.kind === "chain") {
      if (!sameList(l.head, o.base ? [baseSpec(o)] : [])) return false;
      if (!sameRules(l.rules, o.rules)) chains.push(o);
      continue;
    }
    if (!sameList(declarationLines(l.head), declarationLines(setDeclaration(o)))) return false;
    if ((o.owner ?? "model") !== "model") continue;
    if (!sameElements(l.elements, o.elements.map(elementText))) {
      changedSets.add(o.name);
      sets.push(o);
    }
  }
  // A chain that walks a map with state of its own restarts when the map changes (as in diff.ts).
  for (const o of want.objects)
    if (o.kind === "chain" && o.restartWith && changedSets.has(o.restartWith) && !chains.includes(o))
      chains.push(o);
  for (const s of sets) out.push(`flush ${s.kind} ${ref} ${s.name}`);
  const refill = sets.filter((s) => s.elements.length > 0);
  if (refill.length) {
    // Declared again in a block with its elements: nft reads no element back for that (diff.ts).
    out.push(`table ${ref} {`);
    for (const s of refill) objectLines(s, out);
    out.push("}");
  }
  for (const c of chains) {
    out.push(`flush chain ${ref} ${c.name}`);
    for (const r of c.rules) out.push(`add rule ${ref} ${c.name} ${r}`);
  }
  return true;
}

/**
 * `nft list table` text → its objects, or null when it holds something this does not read (a
 * flowtable, a quota…), which then gets a full replace.
 */
export function parseListing(text: string): LiveTable | null {
  const lines = text.split("\n");
  const table: LiveTable = { objects: new Map() };
  let i = 0;
  while (i < lines.length && lines[i]?.trim() === "") i++;
  if (!/^table \S+ \S+ \{$/.test(lines[i] ?? "")) return null;
  i++;
  for (; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === "}") return table;
    if (line.trim() === "") continue;
    if (line.startsWith("\tcomment ")) {
      table.comment = unquote(line.slice("\tcomment ".length));
      continue;
    }
    const m = /^\t(set|map|chain|counter) (\S+) \{$/.exec(line);
    if (!m) return null;
    const kind = m[1] as LiveObject["kind"];
    const o: LiveObject = { kind, name: m[2] as string, head: [], elements: [], rules: [] };
    for (i++; i < lines.length && lines[i] !== "\t}"; i++) {
      const body = (lines[i] as string).trim();
      if (body === "") continue;
      if (kind === "counter") continue;
      if (kind === "chain") {
        if (o.rules.length === 0 && o.head.length === 0 && /^type \S+ hook /.test(body)) o.head.push(body);
        else o.rules.push(body);
        continue;
      }
      if (!body.startsWith("elements = {")) {
        o.head.push(body);
        continue;
      }
      // Elements run over as many lines as nft wraps them onto, up to the closing brace; nft
      // breaks lines only after a comma, so each line is split on its own.
      let part = body.slice("elements = {".length);
      for (;;) {
        const last = part.endsWith("}");
        for (const e of splitElements(last ? part.slice(0, -1) : part)) o.elements.push(e);
        if (last || i + 1 >= lines.length) break;
        part = (lines[++i] as string).trim();
      }
    }
    if (i >= lines.length) return null;
    const key = `${kind === "map" ? "set" : kind} ${o.name}`;
    if (table.objects.has(key)) return null;
    table.objects.set(key, o);
  }
  return null;
}

/** Top-level comma-separated items, quotes and braces respected. */
function splitElements(s: string): string[] {
  // 10,000 prefixes hold neither: split by the engine, not character by character.
  if (!s.includes('"') && !s.includes("{"))
    return s
      .split(",")
      .map((e) => e.trim())
      .filter(Boolean);
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '"' && s[i - 1] !== "\\") quoted = !quoted;
    else if (quoted) continue;
    else if (c === "{") depth++;
    else if (c === "}") depth--;
    else if (c === "," && depth === 0) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = s.slice(start).trim();
  if (last) out.push(last);
  return out;
}

function unquote(s: string): string {
  return s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameElements(live: readonly string[], want: readonly string[]): boolean {
  if (live.length !== want.length) return false;
  const have = new Set(live);
  if (have.size !== live.length) return false;
  return want.every((e) => have.has(e));
}

function sameRules(live: readonly string[], want: readonly string[]): boolean {
  return (
    live.length === want.length &&
    want.every((r, i) => r === live[i] || canonicalRule(r) === canonicalRule(live[i] as string))
  );
}

/**
 * A set's declaration line as the kernel gives it back: `typeof socket cgroupv2 level N` comes
 * back with level 0 (the key is the cgroup's id whatever the level), so the level is not compared.
 */
/**
 * A declaration's lines in a canonical order: nft prints them its own way (`size` before `flags`,
 * `counter` before `timeout`), and the order means nothing. Compared in the model's order, every
 * services table with counter sets read as changed, and a second `apply` replaced it whole.
 */
function declarationLines(lines: readonly string[]): string[] {
  return lines.map(canonicalDeclaration).sort();
}

function canonicalDeclaration(line: string): string {
  return line.replace(/\bsocket cgroupv2 level \d+/g, "socket cgroupv2 level");
}

const NUMBER = /^(?:0x[0-9a-fA-F]+|\d+)$/;
const MASK32 = 0xffffffffn;

/**
 * A rule in a form where nflb's text and the kernel's printing of it meet, by steps that each keep
 * the rule's meaning: the words `and`/`or`/`xor` as `&`/`|`/`^`; every number in decimal
 * (0x00000100 is 256); `X & A | B` on a mark as `X & (A|B) | B` (the same bits), and no `& A`
 * when A is all ones; a counter's name without quotes; no `meta nfproto ipv4` (`ipv6`) in a rule
 * that matches an `ip` (`ip6`) header field, and no `meta l4proto tcp` (`udp`) in one that reads
 * a `tcp` (`udp`) port: nft adds those matches itself for such a rule, and prints it without them.
 */
export function canonicalRule(rule: string): string {
  const w = impliedDropped(
    tokens(rule).map((t) => (t === "and" ? "&" : t === "or" ? "|" : t === "xor" ? "^" : t)),
  );
  for (let i = 0; i < w.length; i++)
    if (NUMBER.test(w[i] as string)) w[i] = BigInt(w[i] as string).toString();
  for (let i = 0; i < w.length; i++) {
    if (w[i - 1] === "name" && w[i - 2] === "counter") w[i] = unquote(w[i] as string);
    if (w[i] !== "&" || w[i - 1] !== "mark" || !NUMBER.test(w[i + 1] ?? "")) continue;
    let mask = BigInt(w[i + 1] as string);
    if (w[i + 2] === "|" && NUMBER.test(w[i + 3] ?? "")) mask |= BigInt(w[i + 3] as string);
    if (mask === MASK32) w.splice(i, 2);
    else w[i + 1] = mask.toString();
  }
  return w.join(" ");
}

const HEADER_FIELDS: Record<string, readonly string[]> = {
  ip: ["saddr", "daddr"],
  ip6: ["saddr", "daddr"],
  tcp: ["sport", "dport"],
  udp: ["sport", "dport"],
};
const IMPLIED: readonly [string, string, string][] = [
  ["nfproto", "ipv4", "ip"],
  ["nfproto", "ipv6", "ip6"],
  ["l4proto", "tcp", "tcp"],
  ["l4proto", "udp", "udp"],
];

/** `w` without the `meta KEY VALUE` matches nft would add itself for a header field of the rule. */
function impliedDropped(w: string[]): string[] {
  let out = w;
  for (const [key, value, header] of IMPLIED) {
    const fields = HEADER_FIELDS[header] ?? [];
    const reads = out.some((t, i) => t === header && fields.includes(out[i + 1] ?? ""));
    if (!reads) continue;
    out = out.filter(
      (_, i) =>
        !(
          (out[i] === "meta" && out[i + 1] === key && out[i + 2] === value) ||
          (out[i - 1] === "meta" && out[i] === key && out[i + 1] === value) ||
          (out[i - 2] === "meta" && out[i - 1] === key && out[i] === value)
        ),
    );
  }
  return out;
}

/** Words of a rule; a quoted string is one word. */
function tokens(s: string): string[] {
  const out: string[] = [];
  const re = /"(?:[^"\\]|\\.)*"|\S+/g;
  for (let m = re.exec(s); m; m = re.exec(s)) out.push(m[0]);
  return out;
}
