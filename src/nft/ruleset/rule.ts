import { NftSyntaxError, type Token } from "./tokens.ts";
import { TYPE_NAMES, type VType } from "./values.ts";

/**
 * The subset of nft's rule language that nflb writes (and `nft list` prints back), as a tree.
 * Anything outside it is a parse error naming the expression: the tracer never skips a part of
 * a rule it does not understand.
 */

/** A packet or conntrack field. `fam`/`l4`: the dependency nft adds (`ip saddr` implies IPv4). */
export interface Selector {
  k: "sel";
  name: string;
  type: VType;
  /** Length in bytes of the register value (for jhash keys). */
  len: number;
  fam?: 4 | 6;
  l4?: readonly string[];
}

export type Expr =
  | Selector
  | { k: "lit"; text: string; quoted: boolean }
  | { k: "concat"; parts: Expr[] }
  | { k: "binop"; op: "and" | "or" | "xor"; left: Expr; right: Lit[] }
  | { k: "numgen"; mode: "random" | "inc"; mod: number; offset: number }
  | { k: "jhash"; key: Expr; mod: number; seed: number; offset: number }
  | { k: "map"; key: Expr; set: SetRef };

export type Lit = { text: string; quoted: boolean };

/** `@name`, or an anonymous set/map written in the rule: elements as token lists. */
export type SetRef = { named: string } | { anon: Token[][] };

export type Verdict = "accept" | "drop" | "return" | "continue" | "jump" | "goto";

export type Stmt =
  | { k: "match"; left: Expr; op: "==" | "!=" | "<" | ">" | "<=" | ">=" | "implicit"; right: Rhs }
  | { k: "vmap"; key: Expr; map: SetRef }
  | { k: "set"; target: Selector; value: Expr }
  | { k: "verdict"; v: Verdict; chain?: string }
  | { k: "counter"; name?: Expr }
  | { k: "nat"; kind: "dnat" | "snat" | "masquerade"; fam?: 4 | 6; to?: string; toExpr?: Expr }
  | { k: "setop"; op: "update" | "add" | "delete"; set: string; key: Expr; value?: Expr; timeout?: string }
  | { k: "comment"; text: string }
  | { k: "ctevent"; events: string[] };

export type Rhs = { k: "set"; ref: SetRef } | { k: "values"; items: Lit[]; mask?: Lit[] };

export interface Rule {
  text: string;
  line: number;
  stmts: Stmt[];
}

const L4_TCP = ["tcp"];
const L4_UDP = ["udp"];
const L4_TH = ["tcp", "udp", "udplite", "sctp", "dccp"];

/** Fields by their words; `ct original ip daddr` and friends are spelled out in full. */
const SELECTORS: Record<string, Omit<Selector, "k" | "name">> = {
  "ip saddr": { type: "ipv4", len: 4, fam: 4 },
  "ip daddr": { type: "ipv4", len: 4, fam: 4 },
  "ip protocol": { type: "proto", len: 1, fam: 4 },
  "ip6 saddr": { type: "ipv6", len: 16, fam: 6 },
  "ip6 daddr": { type: "ipv6", len: 16, fam: 6 },
  "ip6 nexthdr": { type: "proto", len: 1, fam: 6 },
  "tcp sport": { type: "int", len: 2, l4: L4_TCP },
  "tcp dport": { type: "int", len: 2, l4: L4_TCP },
  "tcp flags": { type: "tcpflags", len: 1, l4: L4_TCP },
  "udp sport": { type: "int", len: 2, l4: L4_UDP },
  "udp dport": { type: "int", len: 2, l4: L4_UDP },
  "th sport": { type: "int", len: 2, l4: L4_TH },
  "th dport": { type: "int", len: 2, l4: L4_TH },
  "icmpv6 type": { type: "icmpv6type", len: 1, fam: 6, l4: ["ipv6-icmp"] },
  "@th,64,128": { type: "ipv6", len: 16, l4: ["ipv6-icmp"] },
  "meta l4proto": { type: "proto", len: 1 },
  "meta nfproto": { type: "nfproto", len: 1 },
  "meta mark": { type: "int", len: 4 },
  "meta priority": { type: "tchandle", len: 4 },
  "meta pkttype": { type: "pkttype", len: 1 },
  "meta iifname": { type: "ifname", len: 16 },
  "meta oifname": { type: "ifname", len: 16 },
  "meta iif": { type: "ifname", len: 4 },
  "meta oif": { type: "ifname", len: 4 },
  "ct mark": { type: "int", len: 4 },
  "ct state": { type: "ctstate", len: 4 },
  "ct status": { type: "ctstatus", len: 4 },
  "ct direction": { type: "ctdir", len: 1 },
  "ct original ip saddr": { type: "ipv4", len: 4 },
  "ct original ip daddr": { type: "ipv4", len: 4 },
  "ct original ip6 saddr": { type: "ipv6", len: 16 },
  "ct original ip6 daddr": { type: "ipv6", len: 16 },
  "ct original proto-src": { type: "int", len: 2 },
  "ct original proto-dst": { type: "int", len: 2 },
  "fib daddr type": { type: "fibtype", len: 4 },
  "fib saddr type": { type: "fibtype", len: 4 },
  "arp saddr ip": { type: "ipv4", len: 4 },
  "arp saddr ether": { type: "ether", len: 6 },
};
/** Short forms nft accepts and prints: `iifname` is `meta iifname`. */
const ALIASES: Record<string, string> = {
  iifname: "meta iifname",
  oifname: "meta oifname",
  iif: "meta iif",
  oif: "meta oif",
  mark: "meta mark",
  l4proto: "meta l4proto",
  nfproto: "meta nfproto",
  pkttype: "meta pkttype",
};
const SELECTOR_HEADS = new Set([
  "ip",
  "ip6",
  "tcp",
  "udp",
  "th",
  "icmpv6",
  "meta",
  "ct",
  "fib",
  "socket",
  "arp",
]);
const OPS = new Set(["==", "!=", "<", ">", "<=", ">="]);
const BINOPS: Record<string, "and" | "or" | "xor"> = {
  and: "and",
  "&": "and",
  or: "or",
  "|": "or",
  xor: "xor",
  "^": "xor",
};
const VERDICTS = new Set(["accept", "drop", "return", "continue", "jump", "goto"]);
/** `ct event set` flags nft 1.0.6 knows. */
const CT_EVENTS = new Set([
  "new",
  "related",
  "destroy",
  "reply",
  "assured",
  "protoinfo",
  "helper",
  "mark",
  "seqadj",
  "secmark",
  "label",
]);

const UNSUPPORTED = new Set([
  "log",
  "limit",
  "reject",
  "notrack",
  "queue",
  "meter",
  "quota",
  "redirect",
  "tproxy",
  "fwd",
  "dup",
  "synproxy",
  "flow",
  "ct helper",
  "osf",
  "xt",
]);

/** Parses one rule (its tokens, without the newline). */
export function parseRule(toks: Token[], src: string): Rule {
  const first = toks[0];
  const last = toks[toks.length - 1];
  if (!first || !last) throw new NftSyntaxError(0, "empty rule");
  const p = new RuleParser(toks);
  const stmts: Stmt[] = [];
  while (!p.eof()) stmts.push(p.stmt());
  return { text: src.slice(first.start, last.end), line: first.line, stmts };
}

/** A `typeof`/`type` declaration: key field types and the data type of a map. */
export function parseSetType(
  toks: Token[],
  typeof_: boolean,
): { key: VType[]; data?: VType; dataParts?: VType[] } {
  const colon = toks.findIndex((t) => t.t === ":" && !t.quoted);
  const keyToks = colon < 0 ? toks : toks.slice(0, colon);
  const dataToks = colon < 0 ? [] : toks.slice(colon + 1);
  const line = toks[0]?.line ?? 0;
  const byName = (ts: Token[]): VType[] =>
    ts
      .filter((t) => t.t !== ".")
      .map((t) => {
        const v = TYPE_NAMES[t.t];
        if (!v) throw new NftSyntaxError(line, `unsupported set datatype ${t.t}`);
        return v;
      });
  const byExpr = (ts: Token[]): VType[] => {
    const p = new RuleParser(ts);
    const e = p.expr();
    if (!p.eof()) throw new NftSyntaxError(line, `unexpected ${p.peek()} in typeof`);
    return (e.k === "concat" ? e.parts : [e]).map((x) => typeOfExpr(x) ?? "int");
  };
  const key = typeof_ ? byExpr(keyToks) : byName(keyToks);
  if (colon < 0) return { key };
  const d = dataToks.map((t) => t.t).join(" ");
  if (d === "verdict") return { key, data: "verdict" };
  if (d === "counter") return { key, data: "counter" };
  const parts = typeof_ ? byExpr(dataToks) : byName(dataToks);
  // A concatenated value (`ip daddr . tcp dport`, what a DNAT map gives): every field's type.
  if (parts.length > 1) return { key, data: parts[0] ?? "int", dataParts: parts };
  return { key, data: parts[0] ?? "int" };
}

/** The datatype of an expression's value, when it has a fixed one. */
export function typeOfExpr(e: Expr): VType | undefined {
  switch (e.k) {
    case "sel":
      return e.type;
    case "binop":
      return typeOfExpr(e.left);
    case "numgen":
    case "jhash":
      return "int";
    default:
      return undefined;
  }
}

class RuleParser {
  private i = 0;
  constructor(private readonly toks: Token[]) {}

  eof(): boolean {
    return this.i >= this.toks.length;
  }
  peek(k = 0): string | undefined {
    const t = this.toks[this.i + k];
    return t && !t.quoted ? t.t : t ? `"${t.t}"` : undefined;
  }
  private line(): number {
    return (this.toks[this.i] ?? this.toks[this.toks.length - 1])?.line ?? 0;
  }
  private fail(msg: string): never {
    throw new NftSyntaxError(this.line(), msg);
  }
  private next(): Token {
    const t = this.toks[this.i++];
    if (!t) this.fail("unexpected end of rule");
    return t;
  }
  private word(): string {
    const t = this.next();
    if (t.quoted) this.fail(`unexpected string "${t.t}"`);
    return t.t;
  }
  private expect(w: string): void {
    const got = this.word();
    if (got !== w) this.fail(`expected ${w}, got ${got}`);
  }
  private int(): number {
    const w = this.word();
    if (!/^(0x[0-9a-f]+|\d+)$/i.test(w)) this.fail(`expected a number, got ${w}`);
    return Number(w);
  }
  private rest(n = 4): string {
    return this.toks
      .slice(this.i, this.i + n)
      .map((t) => t.t)
      .join(" ");
  }

  stmt(): Stmt {
    const w = this.peek() ?? "";
    if (VERDICTS.has(w)) {
      this.next();
      if (w === "jump" || w === "goto") return { k: "verdict", v: w, chain: this.word() };
      return { k: "verdict", v: w as Verdict };
    }
    if (UNSUPPORTED.has(w) || UNSUPPORTED.has(`${w} ${this.peek(1)}`))
      this.fail(`unsupported nft statement: ${this.rest()}`);
    if (w === "counter") {
      this.next();
      let name: Expr | undefined;
      if (this.peek() === "name") {
        this.next();
        name = this.expr();
      }
      if (this.peek() === "packets") {
        this.next();
        this.int();
        this.expect("bytes");
        this.int();
      }
      return name ? { k: "counter", name } : { k: "counter" };
    }
    if (w === "comment") {
      this.next();
      return { k: "comment", text: this.next().t };
    }
    if (w === "ct" && this.peek(1) === "event" && this.peek(2) === "set") {
      // Which conntrack events the connection reports to listeners: nothing on the packet path.
      this.next();
      this.next();
      this.next();
      const events = this.litList().map((l) => l.text);
      for (const e of events) if (!CT_EVENTS.has(e)) this.fail(`unknown conntrack event: ${e}`);
      return { k: "ctevent", events };
    }
    if (w === "masquerade") {
      this.next();
      if (!this.eof() && !VERDICTS.has(this.peek() ?? ""))
        this.fail(`unsupported masquerade option: ${this.rest()}`);
      return { k: "nat", kind: "masquerade" };
    }
    if (w === "dnat" || w === "snat") {
      this.next();
      let fam: 4 | 6 | undefined;
      if (this.peek() === "ip" || this.peek() === "ip6") fam = this.word() === "ip" ? 4 : 6;
      this.expect("to");
      // `dnat ip to numgen inc mod 3 map @m`: the address (and port) come from a map lookup.
      const head = this.peek() ?? "";
      if (head === "numgen" || head === "jhash" || SELECTOR_HEADS.has(head)) {
        const toExpr = this.expr();
        if (toExpr.k !== "map") this.fail(`${w} to an expression needs a map lookup`);
        return fam ? { k: "nat", kind: w, fam, toExpr } : { k: "nat", kind: w, toExpr };
      }
      const to = this.word();
      return fam ? { k: "nat", kind: w, fam, to } : { k: "nat", kind: w, to };
    }
    if ((w === "update" || w === "add" || w === "delete") && this.peek(1)?.startsWith("@")) {
      this.next();
      const set = this.word().slice(1);
      this.expect("{");
      const key = this.expr();
      let timeout: string | undefined;
      if (this.peek() === "timeout") {
        this.next();
        timeout = this.word();
      }
      let value: Expr | undefined;
      if (this.peek() === ":") {
        this.next();
        value = this.expr();
      }
      this.expect("}");
      return {
        k: "setop",
        op: w,
        set,
        key,
        ...(value ? { value } : {}),
        ...(timeout !== undefined ? { timeout } : {}),
      };
    }
    const left = this.expr();
    const n = this.peek();
    if (n === "vmap") {
      this.next();
      return { k: "vmap", key: left, map: this.setRef() };
    }
    if (n === "set") {
      this.next();
      if (left.k !== "sel") this.fail("only a field can be set");
      return { k: "set", target: left, value: this.expr() };
    }
    let op: "==" | "!=" | "<" | ">" | "<=" | ">=" | "implicit" = "implicit";
    if (n && OPS.has(n)) op = this.word() as typeof op;
    if (this.eof()) this.fail(`a match without a value: ${this.rest()}`);
    return { k: "match", left, op, right: this.rhs() };
  }

  private setRef(): SetRef {
    const w = this.peek();
    if (w?.startsWith("@")) return { named: this.word().slice(1) };
    if (w === "{") return { anon: this.braced() };
    return this.fail(`expected @set or { … }, got ${this.rest()}`);
  }

  /** `{ a, b . c, d : goto x }` → each element's tokens. */
  private braced(): Token[][] {
    this.expect("{");
    const out: Token[][] = [[]];
    let depth = 0;
    for (;;) {
      const t = this.next();
      if (!t.quoted && t.t === "}" && depth === 0) break;
      if (!t.quoted && (t.t === "{" || t.t === "(")) depth++;
      if (!t.quoted && (t.t === "}" || t.t === ")")) depth--;
      if (!t.quoted && t.t === "," && depth === 0) out.push([]);
      else out[out.length - 1]?.push(t);
    }
    return out.filter((e) => e.length > 0);
  }

  private rhs(): Rhs {
    const w = this.peek();
    if (w?.startsWith("@") || w === "{") return { k: "set", ref: this.setRef() };
    const items = this.litList();
    if (this.peek() === "/") {
      this.next();
      return { k: "values", items, mask: this.litList() };
    }
    return { k: "values", items };
  }

  private litList(): Lit[] {
    const items = [this.lit()];
    while (this.peek() === ",") {
      this.next();
      items.push(this.lit());
    }
    return items;
  }

  private lit(): Lit {
    const t = this.next();
    return { text: t.t, quoted: t.quoted };
  }

  expr(): Expr {
    const parts = [this.primary()];
    while (this.peek() === ".") {
      this.next();
      parts.push(this.primary());
    }
    let e: Expr = parts.length > 1 ? { k: "concat", parts } : (parts[0] as Expr);
    if (this.peek() === "map") {
      this.next();
      e = { k: "map", key: e, set: this.setRef() };
    }
    return e;
  }

  private primary(): Expr {
    let e: Expr;
    const w = this.peek() ?? "";
    if (w === "numgen") {
      this.next();
      const mode = this.word();
      if (mode !== "random" && mode !== "inc") this.fail(`unsupported numgen ${mode}`);
      this.expect("mod");
      const mod = this.int();
      const offset = this.peek() === "offset" ? (this.next(), this.int()) : 0;
      e = { k: "numgen", mode, mod, offset };
    } else if (w === "jhash") {
      this.next();
      const parts = [this.primary()];
      while (this.peek() === ".") {
        this.next();
        parts.push(this.primary());
      }
      this.expect("mod");
      const mod = this.int();
      let seed = 0;
      let offset = 0;
      while (this.peek() === "seed" || this.peek() === "offset") {
        if (this.word() === "seed") seed = this.int();
        else offset = this.int();
      }
      e = {
        k: "jhash",
        key: parts.length > 1 ? { k: "concat", parts } : (parts[0] as Expr),
        mod,
        seed,
        offset,
      };
    } else if (w === "symhash" || w === "rt" || w === "osf" || w === "exthdr" || w === "sctp") {
      this.fail(`unsupported nft expression: ${this.rest()}`);
    } else if (SELECTOR_HEADS.has(w) || w in ALIASES || w.startsWith("@")) {
      e = this.selector();
    } else {
      const t = this.next();
      e = { k: "lit", text: t.t, quoted: t.quoted };
    }
    while (this.peek() !== undefined && (this.peek() ?? "") in BINOPS) {
      const op = BINOPS[this.word()] ?? "and";
      const right: Lit[] = [];
      if (this.peek() === "(") {
        this.next();
        for (;;) {
          right.push(this.lit());
          const sep = this.word();
          if (sep === ")") break;
          if (sep !== "|" && sep !== ",") this.fail(`expected | or ), got ${sep}`);
        }
      } else right.push(this.lit());
      e = { k: "binop", op, left: e, right };
    }
    return e;
  }

  private selector(): Selector {
    const w = this.word();
    if (w in ALIASES) return this.sel(ALIASES[w] ?? w);
    if (w === "socket") {
      this.expect("cgroupv2");
      this.expect("level");
      return { k: "sel", name: `socket cgroupv2 level ${this.int()}`, type: "cgroup", len: 8 };
    }
    if (w.startsWith("@")) return this.sel(w);
    const words = [w];
    // Up to three more words: `ct original ip6 daddr`.
    for (let n = 0; n < 3 && !(words.join(" ") in SELECTORS); n++) {
      const nx = this.peek();
      if (nx === undefined) break;
      words.push(this.word());
    }
    return this.sel(words.join(" "));
  }

  private sel(name: string): Selector {
    const s = SELECTORS[name];
    if (!s) this.fail(`unsupported nft expression: ${name}`);
    return { k: "sel", name, ...s };
  }
}
