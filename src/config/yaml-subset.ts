// Configs are written in a small part of YAML: block mappings and lists, one-line flow lists and
// mappings (`- { address: 10.1.1.1:80 }`), plain and one-line quoted scalars, comments. The `yaml`
// package reads 5,000 services × 50 backends (270,000 lines) in ~5 s, building a node with
// positions for every value; this reads that part of YAML in one pass over the lines, and gives up
// (undefined) on anything else, so the caller reads the whole text the ordinary way: anchors,
// aliases, tags, block scalars, multi-line scalars and flow collections, double-quoted escapes,
// documents and directives, tabs, complex or quoted or non-string keys, duplicate keys. It gives
// up on YAML errors too, so the ordinary read reports them. What it returns is exactly what
// `parseDocument(text, { uniqueKeys: true }).toJS()` returns (YAML 1.2 core schema), as the unit
// test comparing the two on many texts checks.

/** Thrown inside the reader when the text leaves the subset; never escapes subsetYaml. */
class OutOfSubset extends Error {}
const out = (): never => {
  throw new OutOfSubset();
};

// Tabs (YAML forbids them in indentation, and separation rules around them are subtle), control
// characters, a byte order mark and the line breaks of YAML 1.1.
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const BAD_CHARS = /[\t\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\ufeff\u2028\u2029]/;
// Directives, and document start or end markers.
const DOCUMENT_MARKS = /^(%|---|\.\.\.)/m;
/** `key:` at the start of a line's content, the key plain and resolving to a string. */
const KEY = /^([A-Za-z_][A-Za-z0-9_-]*):(?= |$)/;
/** Plain keys the core schema reads as null or a boolean (yaml would turn them into "" or "true"). */
const NOT_STRING_KEYS = new Set(["null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE"]);
/** Characters that cannot start a plain scalar, whatever follows (YAML 1.2 c-indicator). */
const INDICATORS = new Set([..."[]{},#&*!|>'\"%@`"]);
const FLOW_STOP = new Uint8Array(128);
for (const c of "[]{},") FLOW_STOP[c.charCodeAt(0)] = 1;
const [COLON, SPACE, HASH] = [58, 32, 35];

/** The parsed YAML of `text` (like `parseDocument(text).toJS()`), or undefined when it is outside the subset. */
export function subsetYaml(text: string): unknown {
  if (BAD_CHARS.test(text) || DOCUMENT_MARKS.test(text)) return undefined;
  try {
    return new Reader(text).document();
  } catch (e) {
    // RangeError: nesting deeper than the stack (`[[[[…`); the ordinary read reports it.
    if (e instanceof OutOfSubset || e instanceof RangeError) return undefined;
    throw e;
  }
}

class Reader {
  /** Indent and content (trailing spaces cut) of every line that is not blank or only a comment. */
  private readonly indent: number[] = [];
  private readonly content: string[] = [];
  private pos = 0;

  constructor(text: string) {
    for (let line of text.split("\n")) {
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line.includes("\r")) out();
      let i = 0;
      while (line.charCodeAt(i) === 32) i++;
      if (i === line.length || line[i] === "#") continue;
      this.indent.push(i);
      this.content.push(trimSpaces(line.slice(i)));
    }
  }

  document(): unknown {
    if (this.content.length === 0) out();
    const v = this.node(-1);
    if (this.pos < this.content.length) out();
    return v;
  }

  /** The block node whose first line is the current one, indented more than `parent`. */
  private node(parent: number): unknown {
    const n = this.indent[this.pos] as number;
    if (n <= parent) out();
    const text = this.content[this.pos] as string;
    if (isDash(text)) return this.seq(n);
    if (KEY.test(text)) return this.map(n, text);
    return out();
  }

  private seq(n: number): unknown[] {
    const list: unknown[] = [];
    while (this.pos < this.content.length) {
      const ind = this.indent[this.pos] as number;
      if (ind < n) break;
      if (ind > n) out();
      const text = this.content[this.pos] as string;
      if (!isDash(text)) break;
      // The bulk of a long list of prefixes, in one step: resolve() would find them text too.
      const a = ADDRESS_ITEM.exec(text);
      if (a) {
        list.push(a[1]);
        this.pos++;
        continue;
      }
      let s = 1;
      while (text.charCodeAt(s) === 32) s++;
      const item = text.slice(s);
      if (item === "" || item[0] === "#") {
        this.pos++;
        list.push(
          this.pos < this.content.length && (this.indent[this.pos] as number) > n ? this.node(n) : null,
        );
      } else if (isDash(item)) {
        out();
      } else if (KEY.test(item)) {
        // `- key: value`: a mapping whose lines are indented to where its first key starts.
        list.push(this.map(n + s, item));
      } else {
        list.push(inline(item));
        this.pos++;
        if (this.pos < this.content.length && (this.indent[this.pos] as number) > n) out();
      }
    }
    return list;
  }

  /** A block mapping at indent `n`; `first` is its first line's content (after a `- `, in a list). */
  private map(n: number, first: string): Record<string, unknown> {
    const obj: Record<string, unknown> = {};
    for (let text: string | undefined = first; text !== undefined;) {
      const m = KEY.exec(text);
      if (!m) out();
      const key = (m as RegExpExecArray)[1] as string;
      checkKey(obj, key);
      let rest = text.slice(key.length + 1);
      let s = 0;
      while (rest.charCodeAt(s) === 32) s++;
      rest = rest.slice(s);
      this.pos++;
      const next = this.pos < this.content.length ? (this.indent[this.pos] as number) : -1;
      if (rest === "" || rest[0] === "#") {
        if (next > n) obj[key] = this.node(n);
        // A list may sit at its key's own indent.
        else if (next === n && isDash(this.content[this.pos] as string)) obj[key] = this.seq(n);
        else obj[key] = null;
      } else obj[key] = inline(rest);
      text = undefined;
      if (this.pos < this.content.length) {
        const ind = this.indent[this.pos] as number;
        if (ind > n) out();
        if (ind === n && !isDash(this.content[this.pos] as string)) text = this.content[this.pos];
      }
    }
    return obj;
  }
}

/** Without trailing spaces: only those (String#trimEnd would also cut U+00A0 and others, which YAML keeps). */
function trimSpaces(s: string): string {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 32) end--;
  return end === s.length ? s : s.slice(0, end);
}

const isDash = (text: string) => text[0] === "-" && (text.length === 1 || text[1] === " ");

function checkKey(obj: Record<string, unknown>, key: string): void {
  if (NOT_STRING_KEYS.has(key) || key === "__proto__" || Object.prototype.hasOwnProperty.call(obj, key))
    out();
}

/** A value on the rest of a line (`s` starts with its first character, ends without spaces). */
function inline(s: string): unknown {
  const c = s[0];
  if (c === "[" || c === "{" || c === '"' || c === "'") {
    const r = flowValue(s, 0);
    let i = r.end;
    while (s.charCodeAt(i) === 32) i++;
    // Only a comment may follow, after a space.
    if (i < s.length && !(s[i] === "#" && i > r.end)) out();
    return r.value;
  }
  const hash = s.indexOf(" #");
  const v = trimSpaces(hash < 0 ? s : s.slice(0, hash));
  plainStart(v);
  // `a: b` or `a:` would be a nested mapping: an error in yaml, left to it.
  if (v.endsWith(":") || v.includes(": ")) out();
  return resolve(v);
}

/** A flow value starting at s[i]: a flow list or mapping, a quoted or a plain scalar. */
function flowValue(s: string, i: number): { value: unknown; end: number } {
  const c = s[i];
  if (c === "[") return flowSeq(s, i);
  if (c === "{") return flowMap(s, i);
  // Whatever follows (`"a": b` would be a pair) is checked by the caller.
  if (c === '"' || c === "'") return quoted(s, i);
  let j = i;
  for (; j < s.length; j++) {
    const ch = s.charCodeAt(j);
    if (ch < 128 && FLOW_STOP[ch] === 1) break;
    if (ch === COLON) {
      const after = s.charCodeAt(j + 1);
      if (Number.isNaN(after) || after === SPACE || (after < 128 && FLOW_STOP[after] === 1)) out();
    } else if (ch === HASH && s.charCodeAt(j - 1) === SPACE) out();
  }
  const v = trimSpaces(s.slice(i, j));
  plainStart(v);
  return { value: resolve(v), end: j };
}

const skipSpaces = (s: string, i: number) => {
  while (s.charCodeAt(i) === 32) i++;
  return i;
};

function flowSeq(s: string, i: number): { value: unknown[]; end: number } {
  const list: unknown[] = [];
  i = skipSpaces(s, i + 1);
  if (s[i] === "]") return { value: list, end: i + 1 };
  for (;;) {
    const r = flowValue(s, i);
    list.push(r.value);
    i = skipSpaces(s, r.end);
    if (s[i] === "]") return { value: list, end: i + 1 };
    if (s[i] !== ",") out();
    i = skipSpaces(s, i + 1);
    // A trailing comma, an empty item, or the line ends inside the list.
    if (i >= s.length || s[i] === "]" || s[i] === ",") out();
  }
}

const FLOW_KEY = /[A-Za-z_][A-Za-z0-9_-]*: /y;

function flowMap(s: string, i: number): { value: Record<string, unknown>; end: number } {
  const obj: Record<string, unknown> = {};
  i = skipSpaces(s, i + 1);
  if (s[i] === "}") return { value: obj, end: i + 1 };
  for (;;) {
    FLOW_KEY.lastIndex = i;
    const m = FLOW_KEY.exec(s);
    if (!m) out();
    const key = (m as RegExpExecArray)[0].slice(0, -2);
    checkKey(obj, key);
    i = skipSpaces(s, FLOW_KEY.lastIndex);
    if (i >= s.length || s[i] === "," || s[i] === "}") out();
    const r = flowValue(s, i);
    obj[key] = r.value;
    i = skipSpaces(s, r.end);
    if (s[i] === "}") return { value: obj, end: i + 1 };
    if (s[i] !== ",") out();
    i = skipSpaces(s, i + 1);
    if (i >= s.length || s[i] === "}" || s[i] === ",") out();
  }
}

/** A one-line quoted scalar at s[i]; double-quoted only without escapes. */
function quoted(s: string, i: number): { value: string; end: number } {
  const q = s[i] as string;
  if (q === '"') {
    const end = s.indexOf('"', i + 1);
    if (end < 0) out();
    const v = s.slice(i + 1, end);
    if (v.includes("\\")) out();
    return { value: v, end: end + 1 };
  }
  let v = "";
  for (let j = i + 1; j < s.length; j++) {
    const end = s.indexOf("'", j);
    if (end < 0) break;
    v += s.slice(j, end);
    if (s[end + 1] !== "'") return { value: v, end: end + 1 };
    v += "'";
    j = end + 1;
  }
  return out();
}

/** A plain scalar must not be empty nor start with an indicator (`-`, `?`, `:` only before a non-space). */
function plainStart(v: string): void {
  const c = v[0];
  if (c === undefined || INDICATORS.has(c) || c === "?") out();
  if ((c === "-" || c === ":") && (v.length === 1 || v[1] === " ")) out();
}

/**
 * `- ADDRESS`: only characters of addresses and prefixes, with a `/` or a `:` (so never a number),
 * not first and not last (`- 1:` is a mapping).
 */
const ADDRESS_ITEM = /^- +((?=[0-9A-Fa-f.:]*[/:])[0-9A-Fa-f.][0-9A-Fa-f.:/]*(?<!:))$/;

const INT = /^[-+]?[0-9]+$/;
const OCT = /^0o[0-7]+$/;
const HEX = /^0x[0-9a-fA-F]+$/;
const FLOAT_SPECIAL = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
const FLOAT_EXP = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/;

/** A plain scalar's value under the YAML 1.2 core schema, in the order the `yaml` package tests its tags. */
export function resolve(v: string): unknown {
  // Addresses with a port or a length, the bulk of a big config, are text.
  if (v.includes(":") || v.includes("/")) return v;
  switch (v) {
    case "~":
    case "null":
    case "Null":
    case "NULL":
      return null;
    case "true":
    case "True":
    case "TRUE":
      return true;
    case "false":
    case "False":
    case "FALSE":
      return false;
  }
  if (OCT.test(v)) return parseInt(v.slice(2), 8);
  if (INT.test(v)) return parseInt(v, 10);
  if (HEX.test(v)) return parseInt(v.slice(2), 16);
  if (FLOAT_SPECIAL.test(v))
    return v.slice(-3).toLowerCase() === "nan" ? NaN : v[0] === "-" ? -Infinity : Infinity;
  if (FLOAT_EXP.test(v) || FLOAT.test(v)) return parseFloat(v);
  return v;
}
