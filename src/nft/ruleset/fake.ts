import { parseSetType, type Expr, type Rule, type SetRef, type Stmt, type Verdict } from "./rule.ts";
import { parseScript, type BaseHook, type ChainDecl, type Command, type SetDecl } from "./script.ts";
import { NftSyntaxError, type Token } from "./tokens.ts";
import { NftValueError, parseAtom, parseDuration, type Atom, type Val, type VType } from "./values.ts";

/**
 * An in-memory nftables ruleset and a fake `nft -f` that applies scripts to it the way the kernel
 * does: one transaction, all or nothing, and an error (with the script's line) when a rule names
 * a set, map, chain or counter that does not exist, or a command deletes or flushes a missing
 * object. Modelled on kubernetes-sigs/knftables' Fake; written for nflb's subset of nft.
 */

export type ElemValue = { verdict: Verdict; chain?: string } | { val: Val } | { vals: Val[] };

export interface Elem {
  key: Atom[];
  value?: ElemValue;
  timeoutMs?: number;
  expiresMs?: number;
}

export interface NSet {
  name: string;
  map: boolean;
  key: VType[];
  data?: VType;
  /** A concatenated value's field types (`ipv4_addr . inet_service`); absent for one field. */
  dataParts?: VType[];
  flags: string[];
  /** Packets per element, bumped by lookups that find it (sets declared `counter`), by key text. */
  hits?: Map<string, number>;
  timeoutMs?: number;
  elements: Elem[];
}

export interface Chain {
  name: string;
  base?: BaseHook;
  rules: Rule[];
}

export interface Table {
  family: string;
  name: string;
  comment?: string;
  sets: Map<string, NSet>;
  chains: Map<string, Chain>;
  counters: Set<string>;
}

export class Ruleset {
  readonly tables = new Map<string, Table>();

  table(family: string, name: string): Table | undefined {
    return this.tables.get(`${family} ${name}`);
  }
}

export class NftFakeError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
    this.name = "NftFakeError";
  }
}

export class NftFake {
  ruleset = new Ruleset();

  /** Applies `script` as one transaction; on error nothing changes and NftFakeError says why. */
  apply(script: string): void {
    let cmds: Command[];
    try {
      cmds = parseScript(script);
    } catch (e) {
      if (e instanceof NftSyntaxError || e instanceof NftValueError)
        throw new NftFakeError(e instanceof NftSyntaxError ? e.line : 0, `syntax error: ${e.message}`);
      throw e;
    }
    const work = cloneRuleset(this.ruleset);
    for (const c of cmds) {
      try {
        applyCommand(work, c);
      } catch (e) {
        if (e instanceof NftFakeError) throw e;
        if (e instanceof NftValueError || e instanceof NftSyntaxError)
          throw new NftFakeError(c.line, `${e.message} (${c.text})`);
        throw e;
      }
    }
    this.ruleset = work;
  }
}

/** `nft list table …` text (or any script) → a ruleset, with the same checks. */
export function parseRuleset(text: string): Ruleset {
  const f = new NftFake();
  f.apply(text);
  return f.ruleset;
}

function cloneRuleset(r: Ruleset): Ruleset {
  const out = new Ruleset();
  for (const [k, t] of r.tables) {
    out.tables.set(k, {
      ...t,
      sets: new Map([...t.sets].map(([n, s]) => [n, { ...s, elements: [...s.elements] }])),
      chains: new Map([...t.chains].map(([n, c]) => [n, { ...c, rules: [...c.rules] }])),
      counters: new Set(t.counters),
    });
  }
  return out;
}

const ENOENT = "No such file or directory";

function applyCommand(r: Ruleset, c: Command): void {
  const key = `${c.family} ${c.table}`;
  const fail = (msg: string): never => {
    throw new NftFakeError(c.line, `${msg} (${c.text})`);
  };
  if (c.op === "block" || (c.op === "add" && c.obj === "table") || (c.op === "create" && c.obj === "table")) {
    if (c.op === "create" && r.tables.has(key)) fail(`table ${key} exists`);
    if (!r.tables.has(key))
      r.tables.set(key, {
        family: c.family,
        name: c.table,
        sets: new Map(),
        chains: new Map(),
        counters: new Set(),
      });
    if (c.op === "block") applyBlock(r, c, fail);
    return;
  }
  const t = r.tables.get(key) ?? fail(`${ENOENT}: table ${key}`);
  if (c.obj === "table") {
    if (c.op === "delete") r.tables.delete(key);
    else if (c.op === "flush") {
      for (const ch of t.chains.values()) ch.rules = [];
      for (const s of t.sets.values()) s.elements = [];
    }
    return;
  }
  if (c.obj === "rule") {
    const ch = t.chains.get(c.name) ?? fail(`${ENOENT}: chain ${c.name}`);
    checkRule(t, c.rule, fail);
    if (c.op === "insert") ch.rules.unshift(c.rule);
    else ch.rules.push(c.rule);
    return;
  }
  if (c.obj === "element") {
    const s = t.sets.get(c.name) ?? fail(`${ENOENT}: set ${c.name}`);
    if (c.op === "delete") deleteElements(s, c.elems, fail);
    else addElements(t, s, c.elems, fail, c.op === "create");
    return;
  }
  if (c.op === "add" || c.op === "create") {
    if (c.obj === "chain") {
      const name = c.decl.name;
      if (t.chains.has(name) && c.op === "create") fail(`File exists: chain ${name}`);
      if (!t.chains.has(name)) t.chains.set(name, newChain(c.decl));
      addRules(t, c.decl);
    } else if (c.obj === "set") {
      const name = c.decl.name;
      if (t.sets.has(name) && c.op === "create") fail(`File exists: set ${name}`);
      if (!t.sets.has(name)) t.sets.set(name, newSet(c.decl));
      addElements(t, t.sets.get(name) as NSet, c.decl.elems, fail);
    } else {
      if (t.counters.has(c.name) && c.op === "create") fail(`File exists: counter ${c.name}`);
      t.counters.add(c.name);
    }
    return;
  }
  // What is left: delete and flush of a chain, set, map or counter.
  const d = c as Extract<Command, { op: "delete" | "flush"; name: string }>;
  if (d.obj === "chain") {
    const ch = t.chains.get(d.name) ?? fail(`${ENOENT}: chain ${d.name}`);
    if (d.op === "flush") ch.rules = [];
    else {
      if (ch.rules.length) fail(`Device or resource busy: chain ${d.name} is not empty`);
      const user = usersOf(t, { chain: d.name });
      if (user) fail(`Device or resource busy: chain ${d.name} is used by ${user}`);
      t.chains.delete(d.name);
    }
    return;
  }
  if (d.obj === "counter") {
    if (!t.counters.has(d.name)) fail(`${ENOENT}: counter ${d.name}`);
    if (d.op === "delete") {
      const user = usersOf(t, { counter: d.name });
      if (user) fail(`Device or resource busy: counter ${d.name} is used by ${user}`);
      t.counters.delete(d.name);
    }
    return;
  }
  const s = t.sets.get(d.name) ?? fail(`${ENOENT}: ${d.obj} ${d.name}`);
  if (s.map !== (d.obj === "map")) fail(`${ENOENT}: ${d.name} is a ${s.map ? "map" : "set"}, not a ${d.obj}`);
  if (d.op === "flush") s.elements = [];
  else {
    const user = usersOf(t, { set: d.name });
    if (user) fail(`Device or resource busy: ${d.obj} ${d.name} is used by ${user}`);
    t.sets.delete(d.name);
  }
}

function newChain(d: ChainDecl): Chain {
  return { name: d.name, ...(d.base ? { base: d.base } : {}), rules: [] };
}

function applyBlock(r: Ruleset, c: Command & { op: "block" }, fail: (m: string) => never): void {
  const t = r.tables.get(`${c.family} ${c.table}`) as Table;
  // nft declares a block's sets, counters and chains before adding any rule or element, so
  // references within one block may point forward.
  for (const it of c.items) {
    if (it.kind === "comment") t.comment = it.text;
    else if (it.kind === "counter") t.counters.add(it.name);
    else if (it.kind === "set" && !t.sets.has(it.decl.name)) t.sets.set(it.decl.name, newSet(it.decl));
    else if (it.kind === "chain" && !t.chains.has(it.decl.name))
      t.chains.set(it.decl.name, newChain(it.decl));
  }
  for (const it of c.items) {
    if (it.kind === "set")
      addElements(t, t.sets.get(it.decl.name) as NSet, it.decl.elems, (m) => {
        throw new NftFakeError(it.decl.line, `${m} (${it.decl.map ? "map" : "set"} ${it.decl.name})`);
      });
  }
  for (const it of c.items) if (it.kind === "chain") addRules(t, it.decl);
  void fail;
}

function newSet(d: SetDecl): NSet {
  const { key, data, dataParts } = parseSetType(d.typeToks, d.typeof);
  if (d.map && !data) throw new NftFakeError(d.line, `map ${d.name} has no data type`);
  if (!d.map && data) throw new NftFakeError(d.line, `set ${d.name} has a data type: declare it as a map`);
  const s: NSet = { name: d.name, map: d.map, key, flags: d.flags, elements: [] };
  if (data) s.data = data;
  if (dataParts) s.dataParts = dataParts;
  if (d.timeoutMs !== undefined) s.timeoutMs = d.timeoutMs;
  return s;
}

function addRules(t: Table, d: ChainDecl): void {
  const ch = t.chains.get(d.name) as Chain;
  if (d.base && !ch.base) ch.base = d.base;
  for (const rule of d.rules) {
    checkRule(t, rule, (m) => {
      throw new NftFakeError(rule.line, `${m} (chain ${d.name}: ${rule.text})`);
    });
    ch.rules.push(rule);
  }
}

/** The element's tokens → key atoms, modifiers and value, typed by the set's declaration. */
export function parseElement(s: NSet, toks: Token[]): Elem {
  const key: Atom[] = [];
  let i = 0;
  const word = (): Token => {
    const t = toks[i++];
    if (!t) throw new NftValueError(`incomplete element of ${s.name}`);
    return t;
  };
  for (;;) {
    const t = word();
    const type = s.key[key.length];
    if (!type) throw new NftValueError(`element of ${s.name} has more fields than its type`);
    key.push(parseAtom(type, t.t, t.quoted));
    if (toks[i]?.t !== "." || toks[i]?.quoted) break;
    i++;
  }
  if (key.length !== s.key.length) throw new NftValueError(`element of ${s.name} has too few fields`);
  const e: Elem = { key };
  while (i < toks.length) {
    const t = word();
    if (t.t === "timeout") e.timeoutMs = parseDuration(word().t);
    else if (t.t === "expires") e.expiresMs = parseDuration(word().t);
    else if (t.t === "comment") word();
    else if (t.t === "counter") {
      if (toks[i]?.t === "packets") i += 4;
    } else if (t.t === ":") {
      if (!s.map) throw new NftValueError(`set ${s.name} has no values`);
      const v = word();
      if (s.data === "verdict") {
        if (v.t === "goto" || v.t === "jump") e.value = { verdict: v.t, chain: word().t };
        else if (["accept", "drop", "return", "continue"].includes(v.t))
          e.value = { verdict: v.t as Verdict };
        else throw new NftValueError(`${v.t} is not a verdict`);
      } else if (s.dataParts) {
        const vals = [parseAtom(s.dataParts[0] ?? "int", v.t, v.quoted).lo];
        while (toks[i]?.t === "." && !toks[i]?.quoted) {
          i++;
          const w = word();
          vals.push(parseAtom(s.dataParts[vals.length] ?? "int", w.t, w.quoted).lo);
        }
        if (vals.length !== s.dataParts.length)
          throw new NftValueError(
            `element of ${s.name} has a value of ${vals.length} fields, not ${s.dataParts.length}`,
          );
        e.value = { vals };
      } else e.value = { val: parseAtom(s.data ?? "int", v.t, v.quoted).lo };
    } else throw new NftValueError(`unexpected ${t.t} in an element of ${s.name}`);
  }
  if (s.map && !e.value) throw new NftValueError(`element of map ${s.name} has no value`);
  return e;
}

const keyOf = (key: Atom[]) => key.map((a) => `${a.lo}-${a.hi}`).join("|");

/** Position of each element by key: one pass, so a transaction of n elements costs O(n). */
function indexOf(s: NSet): Map<string, number> {
  return new Map(s.elements.map((e, i) => [keyOf(e.key), i]));
}

function addElements(t: Table, s: NSet, elems: Token[][], fail: (m: string) => never, create = false): void {
  const index = indexOf(s);
  for (const toks of elems) {
    const e = parseElement(s, toks);
    if (e.value && "verdict" in e.value && e.value.chain) {
      const ch = t.chains.get(e.value.chain);
      if (!ch) fail(`${ENOENT}: element of ${s.name} jumps to chain ${e.value.chain}, which is not defined`);
      if (ch.base) fail(`element of ${s.name} jumps to base chain ${ch.name}`);
    }
    if (e.value && "val" in e.value && s.data === "counter" && !t.counters.has(String(e.value.val)))
      fail(`${ENOENT}: element of ${s.name} names counter ${String(e.value.val)}, which is not defined`);
    if (!s.flags.includes("interval") && e.key.some((a) => a.lo !== a.hi))
      fail(`set ${s.name} has no interval flag: ranges and prefixes need it`);
    const at = index.get(keyOf(e.key)) ?? -1;
    if (at >= 0) {
      const old = s.elements[at] as Elem;
      if (create) fail(`File exists: element of ${s.name}`);
      if (JSON.stringify(old.value, big) !== JSON.stringify(e.value, big))
        fail(`File exists: element of ${s.name} already holds another value`);
      continue;
    }
    if (s.flags.includes("interval") && !s.flags.includes("auto-merge")) {
      const clash = s.elements.find((o) => o.key.every((a, i) => overlaps(a, e.key[i] as Atom)));
      if (clash) fail(`File exists: interval of ${s.name} overlaps another element`);
    }
    index.set(keyOf(e.key), s.elements.length);
    s.elements.push(e);
  }
}

const big = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

function overlaps(a: Atom, b: Atom): boolean {
  if (typeof a.lo === "string" || typeof b.lo === "string") return a.lo === b.lo;
  return a.lo <= (b.hi as bigint) && b.lo <= (a.hi as bigint);
}

function deleteElements(s: NSet, elems: Token[][], fail: (m: string) => never): void {
  const gone = new Set<number>();
  const index = indexOf(s);
  for (const toks of elems) {
    const at = index.get(keyOf(parseElement({ ...s, map: false }, toks.slice(0, keyEnd(toks))).key));
    if (at === undefined || gone.has(at))
      fail(`${ENOENT}: element ${toks.map((t) => t.t).join(" ")} is not in ${s.name}`);
    gone.add(at);
  }
  s.elements = s.elements.filter((_, i) => !gone.has(i));
}

/** A delete names the key only; nft accepts (and ignores) a value after it. */
function keyEnd(toks: Token[]): number {
  const i = toks.findIndex((t) => !t.quoted && t.t === ":");
  return i < 0 ? toks.length : i;
}

/** Every object a rule names: sets, chains, counters. */
function* refsOf(
  stmts: Stmt[],
): Generator<{ set?: string; chain?: string; counter?: string; anon?: Token[][] }> {
  const fromExpr = function* (e: Expr): Generator<{ set?: string; anon?: Token[][] }> {
    if (e.k === "map") {
      yield* fromRef(e.set);
      yield* fromExpr(e.key);
    } else if (e.k === "concat") for (const p of e.parts) yield* fromExpr(p);
    else if (e.k === "binop") yield* fromExpr(e.left);
    else if (e.k === "jhash") yield* fromExpr(e.key);
  };
  const fromRef = function* (r: SetRef): Generator<{ set?: string; anon?: Token[][] }> {
    if ("named" in r) yield { set: r.named };
    else yield { anon: r.anon };
  };
  for (const s of stmts) {
    if (s.k === "match") {
      yield* fromExpr(s.left);
      if (s.right.k === "set") yield* fromRef(s.right.ref);
    } else if (s.k === "vmap") {
      yield* fromExpr(s.key);
      yield* fromRef(s.map);
    } else if (s.k === "set") yield* fromExpr(s.value);
    else if (s.k === "nat" && s.toExpr) yield* fromExpr(s.toExpr);
    else if (s.k === "verdict" && s.chain) yield { chain: s.chain };
    else if (s.k === "counter" && s.name) {
      if (s.name.k === "lit") yield { counter: s.name.text };
      else yield* fromExpr(s.name);
    } else if (s.k === "setop") {
      yield { set: s.set };
      yield* fromExpr(s.key);
      if (s.value) yield* fromExpr(s.value);
    }
  }
}

function checkRule(t: Table, rule: Rule, fail: (m: string) => never): void {
  for (const r of refsOf(rule.stmts)) {
    if (r.set !== undefined && !t.sets.has(r.set)) fail(`${ENOENT}: set @${r.set} is not defined`);
    if (r.counter !== undefined && !t.counters.has(r.counter))
      fail(`${ENOENT}: counter ${r.counter} is not defined`);
    const chains = r.chain !== undefined ? [r.chain] : anonChains(r.anon ?? []);
    for (const name of chains) {
      const ch = t.chains.get(name);
      if (!ch) fail(`${ENOENT}: chain ${name} is not defined`);
      if (ch.base) fail(`cannot jump to base chain ${name}`);
    }
  }
}

function anonChains(elems: Token[][]): string[] {
  return elems.flatMap((e) => {
    const i = e.findIndex((t) => t.t === "goto" || t.t === "jump");
    const c = i >= 0 ? e[i + 1] : undefined;
    return c ? [c.t] : [];
  });
}

/** Who refers to an object (a rule or a map element), for `delete` of something in use. */
function usersOf(t: Table, what: { chain?: string; set?: string; counter?: string }): string | null {
  for (const ch of t.chains.values())
    for (const rule of ch.rules)
      for (const r of refsOf(rule.stmts)) {
        if (what.set !== undefined && r.set === what.set) return `chain ${ch.name}`;
        if (what.counter !== undefined && r.counter === what.counter) return `chain ${ch.name}`;
        if (
          what.chain !== undefined &&
          (r.chain === what.chain || anonChains(r.anon ?? []).includes(what.chain))
        )
          return `chain ${ch.name}`;
      }
  for (const s of t.sets.values())
    for (const e of s.elements) {
      if (what.chain !== undefined && e.value && "chain" in e.value && e.value.chain === what.chain)
        return `map ${s.name}`;
      if (what.counter !== undefined && e.value && "val" in e.value && e.value.val === what.counter)
        return `map ${s.name}`;
    }
  return null;
}
