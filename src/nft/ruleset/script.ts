import { parseRule, type Rule } from "./rule.ts";
import { NftSyntaxError, tokenize, type Token } from "./tokens.ts";
import { parseDuration } from "./values.ts";

/**
 * An nft script (what nflb writes with `nft -f`, or what `nft list table` prints) → commands.
 * Syntax only: whether the objects exist is the fake's business (fake.ts).
 */

export interface SetDecl {
  name: string;
  map: boolean;
  /** The `type`/`typeof` line's tokens (after the keyword). */
  typeToks: Token[];
  typeof: boolean;
  flags: string[];
  timeoutMs?: number;
  size?: number;
  elems: Token[][];
  line: number;
}

export interface BaseHook {
  type: string;
  hook: string;
  priority: number;
  policy: "accept" | "drop";
}

export interface ChainDecl {
  name: string;
  base?: BaseHook;
  rules: Rule[];
  line: number;
}

export type TableItem =
  | { kind: "set"; decl: SetDecl }
  | { kind: "chain"; decl: ChainDecl }
  | { kind: "counter"; name: string; line: number }
  | { kind: "comment"; text: string };

export type Obj = "table" | "chain" | "set" | "map" | "counter" | "element" | "rule";

interface At {
  line: number;
  text: string;
  family: string;
  table: string;
}
export type Command =
  | (At & { op: "add" | "create" | "delete" | "flush"; obj: "table" })
  | (At & { op: "block"; obj?: undefined; items: TableItem[] })
  | (At & { op: "add" | "create"; obj: "chain"; decl: ChainDecl })
  | (At & { op: "add" | "create"; obj: "set"; decl: SetDecl })
  | (At & { op: "add" | "create"; obj: "counter"; name: string })
  | (At & { op: "delete" | "flush"; obj: "chain" | "set" | "map" | "counter"; name: string })
  | (At & { op: "add" | "create" | "delete"; obj: "element"; name: string; elems: Token[][] })
  | (At & { op: "add" | "insert"; obj: "rule"; name: string; rule: Rule });

const FAMILIES = new Set(["ip", "ip6", "inet", "arp", "bridge", "netdev"]);

/** Standard priority names (nft's `mangle`, `dstnat`, …) as numbers. */
const PRIORITIES: Record<string, number> = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
  out: 100,
};

export function parseScript(src: string): Command[] {
  return new ScriptParser(src).commands();
}

class ScriptParser {
  private readonly toks: Token[];
  private i = 0;
  constructor(private readonly src: string) {
    this.toks = tokenize(src);
  }

  private peek(k = 0): Token | undefined {
    return this.toks[this.i + k];
  }
  private line(): number {
    return (this.peek() ?? this.toks[this.toks.length - 1])?.line ?? 0;
  }
  private fail(msg: string): never {
    throw new NftSyntaxError(this.line(), msg);
  }
  private next(): Token {
    const t = this.toks[this.i++];
    if (!t) this.fail("unexpected end of script");
    return t;
  }
  private word(): string {
    const t = this.next();
    if (t.quoted) this.fail(`unexpected string "${t.t}"`);
    if (t.t === "\n") this.fail("unexpected end of line");
    return t.t;
  }
  private is(w: string, k = 0): boolean {
    const t = this.peek(k);
    return !!t && !t.quoted && t.t === w;
  }
  private expect(w: string): void {
    const got = this.next();
    if (got.quoted || got.t !== w) this.fail(`expected ${w}, got ${got.t === "\n" ? "end of line" : got.t}`);
  }
  private skipNL(): void {
    while (this.is("\n") || this.is(";")) this.i++;
  }
  /** Tokens to the end of the line (or `;`, or a closing brace of the enclosing block). */
  private lineToks(): Token[] {
    const out: Token[] = [];
    let depth = 0;
    for (let t = this.peek(); t; t = this.peek()) {
      if (!t.quoted && depth === 0 && (t.t === "\n" || t.t === ";" || t.t === "}")) break;
      if (!t.quoted && t.t === "{") depth++;
      if (!t.quoted && t.t === "}") depth--;
      if (!t.quoted && t.t === "\n") {
        this.i++;
        continue;
      }
      out.push(t);
      this.i++;
    }
    return out;
  }
  private textOf(from: Token, to = this.toks[this.i - 1]): string {
    return this.src.slice(from.start, to?.end ?? from.end).split("\n")[0] ?? "";
  }

  commands(): Command[] {
    const out: Command[] = [];
    for (this.skipNL(); this.peek(); this.skipNL()) out.push(this.command());
    return out;
  }

  private tableRef(): { family: string; table: string } {
    let family = "ip";
    const after = this.peek(1);
    if (FAMILIES.has(this.peek()?.t ?? "") && after && (after.quoted || !["{", "\n", ";"].includes(after.t)))
      family = this.word();
    return { family, table: this.word() };
  }

  private command(): Command {
    const first = this.next();
    const line = first.line;
    const verb = first.t;
    if (verb === "table") {
      const ref = this.tableRef();
      const items = this.tableBody();
      return { line, text: this.textOf(first), ...ref, op: "block", items };
    }
    if (!["add", "create", "delete", "flush", "insert", "destroy"].includes(verb))
      this.fail(`unsupported nft command: ${verb}`);
    const obj = this.word();
    const base = { line, text: "" };
    const done = <C extends Command>(c: C): C => ({ ...c, text: this.textOf(first) });
    if (obj === "table") {
      const ref = this.tableRef();
      if (verb === "add" && this.is("{")) {
        return done({ ...base, ...ref, op: "block", items: this.tableBody() });
      }
      if (verb === "insert") this.fail("insert table?");
      return done({ ...base, ...ref, op: verb as "add", obj: "table" });
    }
    const ref = this.tableRef();
    const name = this.word();
    if (obj === "chain" && (verb === "add" || verb === "create")) {
      const decl: ChainDecl = { name, rules: [], line };
      if (this.is("{")) this.chainBody(decl);
      return done({ ...base, ...ref, op: verb, obj: "chain", decl });
    }
    if ((obj === "set" || obj === "map") && (verb === "add" || verb === "create")) {
      const decl = this.setBody(name, obj === "map", line);
      return done({ ...base, ...ref, op: verb, obj: "set", decl });
    }
    if (obj === "counter" && (verb === "add" || verb === "create")) {
      if (this.is("{")) this.counterBody();
      return done({ ...base, ...ref, op: verb, obj: "counter", name });
    }
    if (["chain", "set", "map", "counter"].includes(obj) && (verb === "delete" || verb === "flush")) {
      return done({ ...base, ...ref, op: verb, obj: obj as "chain", name });
    }
    if (obj === "element" && (verb === "add" || verb === "create" || verb === "delete")) {
      return done({ ...base, ...ref, op: verb, obj: "element", name, elems: this.elements() });
    }
    if (obj === "rule" && (verb === "add" || verb === "insert")) {
      const toks = this.lineToks();
      if (toks[0]?.t === "position" || toks[0]?.t === "index" || toks[0]?.t === "handle")
        this.fail("rule positions are not supported");
      const rule = parseRule(toks, this.src);
      return done({ ...base, ...ref, op: verb, obj: "rule", name, rule });
    }
    return this.fail(`unsupported nft command: ${verb} ${obj}`);
  }

  /** `{ a, b . c : goto x, … }` (newlines allowed) → each element's tokens. */
  private elements(): Token[][] {
    this.expect("{");
    const out: Token[][] = [[]];
    for (;;) {
      const t = this.next();
      if (!t.quoted && t.t === "}") break;
      if (!t.quoted && t.t === "\n") continue;
      if (!t.quoted && t.t === ",") out.push([]);
      else out[out.length - 1]?.push(t);
    }
    return out.filter((e) => e.length > 0);
  }

  private tableBody(): TableItem[] {
    this.expect("{");
    const items: TableItem[] = [];
    for (this.skipNL(); !this.is("}"); this.skipNL()) {
      const line = this.line();
      const w = this.word();
      if (w === "comment") items.push({ kind: "comment", text: this.next().t });
      else if (w === "set" || w === "map")
        items.push({ kind: "set", decl: this.setBody(this.word(), w === "map", line) });
      else if (w === "counter") {
        const name = this.word();
        this.counterBody();
        items.push({ kind: "counter", name, line });
      } else if (w === "chain") {
        const decl: ChainDecl = { name: this.word(), rules: [], line };
        this.chainBody(decl);
        items.push({ kind: "chain", decl });
      } else if (w === "flags") this.lineToks();
      else this.fail(`unsupported in a table: ${w}`);
    }
    this.expect("}");
    return items;
  }

  private counterBody(): void {
    this.expect("{");
    for (this.skipNL(); !this.is("}"); this.skipNL()) {
      const w = this.word();
      if (w === "packets" || w === "bytes") this.word();
      else if (w === "comment") this.next();
      else this.fail(`unexpected ${w} in a counter`);
    }
    this.expect("}");
  }

  private setBody(name: string, map: boolean, line: number): SetDecl {
    const d: SetDecl = { name, map, typeToks: [], typeof: false, flags: [], elems: [], line };
    this.expect("{");
    for (this.skipNL(); !this.is("}"); this.skipNL()) {
      const w = this.word();
      if (w === "type" || w === "typeof") {
        d.typeof = w === "typeof";
        d.typeToks = this.lineToks();
      } else if (w === "flags") d.flags = this.lineToks().flatMap((t) => (t.t === "," ? [] : [t.t]));
      else if (w === "timeout") d.timeoutMs = parseDuration(this.word());
      else if (w === "gc-interval") parseDuration(this.word());
      else if (w === "size") d.size = Number(this.word());
      else if (w === "policy") this.word();
      else if (w === "auto-merge") d.flags.push("auto-merge");
      // Per-element counters: kept as a flag (a lookup that finds an element bumps its counter).
      else if (w === "counter") d.flags.push("counter");
      else if (w === "comment") this.next();
      else if (w === "elements") {
        this.expect("=");
        d.elems = this.elements();
      } else this.fail(`unsupported in a ${map ? "map" : "set"}: ${w}`);
    }
    this.expect("}");
    if (d.typeToks.length === 0) this.fail(`${map ? "map" : "set"} ${name} has no type`);
    return d;
  }

  private chainBody(d: ChainDecl): void {
    this.expect("{");
    for (this.skipNL(); !this.is("}"); this.skipNL()) {
      if (this.is("type")) {
        this.next();
        const type = this.word();
        this.expect("hook");
        const hook = this.word();
        if (this.is("device")) this.fail("netdev hooks are not supported");
        this.expect("priority");
        let priority = this.priority();
        while (this.is("+") || this.is("-")) {
          const sign = this.word() === "+" ? 1 : -1;
          priority += sign * Number(this.word());
        }
        d.base = { type, hook, priority, policy: "accept" };
      } else if (this.is("policy")) {
        this.next();
        const p = this.word();
        if (p !== "accept" && p !== "drop") this.fail(`bad policy ${p}`);
        if (!d.base) this.fail("policy without a hook");
        d.base.policy = p;
      } else if (this.is("comment")) {
        this.next();
        this.next();
      } else {
        const toks = this.lineToks();
        if (toks.length) d.rules.push(parseRule(toks, this.src));
      }
    }
    this.expect("}");
  }

  private priority(): number {
    const w = this.word();
    if (w in PRIORITIES) return PRIORITIES[w] ?? 0;
    if (/^-?\d+$/.test(w)) return Number(w);
    return this.fail(`unknown priority ${w}`);
  }
}
