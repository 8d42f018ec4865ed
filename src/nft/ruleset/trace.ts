import { isIPv4 } from "node:net";
import type { Chain, Elem, NSet, Ruleset, Table } from "./fake.ts";
import { concatKey, nftJhash } from "./jhash.ts";
import {
  typeOfExpr,
  type Expr,
  type Lit,
  type Rhs,
  type Rule,
  type Selector,
  type SetRef,
  type Stmt,
} from "./rule.ts";
import { parseElement } from "./fake.ts";
import {
  BITMASK_TYPES,
  formatVal,
  inAtom,
  ipv4ToInt,
  ipv6ToInt,
  parseAtom,
  toBytes,
  type Atom,
  type Val,
  type VType,
} from "./values.ts";

/**
 * A packet tracer over a Ruleset: walks the base chains of the packet's path in hook and
 * priority order and evaluates nflb's subset of nft expressions, as the kernel would. Modelled on
 * kube-proxy's nftables test tracer. An expression it does not implement is an error naming it;
 * a field the packet leaves unknown (no protocol, no input interface) makes the rule that needs
 * it not match, and the trace says so.
 */

export type Hook = "prerouting" | "input" | "forward" | "output" | "postrouting";

export interface Packet {
  family: 4 | 6;
  saddr: string;
  daddr: string;
  /** Missing: unknown (rules that need the protocol or ports do not match, and say so). */
  l4proto?: "tcp" | "udp" | "icmp" | "ipv6-icmp";
  sport?: number;
  dport?: number;
  iif?: string;
  oif?: string;
  /** Default "new". */
  ctState?: "new" | "established" | "related" | "invalid";
  ctMark?: number;
  mark?: number;
  /** skb->priority as the packet arrives (default 0, `none`). */
  priority?: number;
  /** ct status bits (IPS_*), for packets of established connections; default 0. */
  ctStatus?: number;
  ctDirection?: "original" | "reply";
  /** The connection's original tuple; default: this packet's own addresses and ports. */
  ctOriginal?: { saddr: string; daddr: string; sport?: number; dport?: number };
  /** Default: SYN on a new TCP connection, ACK otherwise. */
  tcpFlags?: string[];
  pkttype?: "host" | "broadcast" | "multicast" | "other";
  /** Default "forward": prerouting → forward → postrouting; "input" stops at the router; "output" is its own. */
  path?: "forward" | "input" | "output";
  /** The sending socket's cgroup (v2) path, for `socket cgroupv2`; missing: no socket. */
  cgroup?: string;
  icmpv6Type?: string;
  /** The target of a neighbour solicitation (`@th,64,128`). */
  ndTarget?: string;
  /** The router's own addresses, for `fib daddr type` and `fib saddr type`. */
  localAddresses?: readonly string[];
}

export interface TraceOptions {
  /** Only these hooks (e.g. ["prerouting"] to stop at the routing decision). */
  hooks?: readonly Hook[];
  /** The value every `numgen` yields (before its modulus); without it `trace` refuses a numgen. */
  numgen?: number;
  /** Apply `update`/`add @set` statements to the ruleset's sets (sticky memory). */
  remember?: boolean;
}

export interface TraceStep {
  hook: Hook;
  table: string;
  chain: string;
  rule: string;
  /** What the rule did: marks set, verdicts taken from maps, hashes computed, NAT. */
  effects: string[];
  /** The rule could not be evaluated because the packet leaves this field unknown: it did not match. */
  unknown?: string;
}

export type NatResult =
  | { kind: "dnat"; addr: string; port?: number; chain: string }
  | { kind: "snat"; addr: string; chain: string }
  | { kind: "masquerade"; chain: string };

export interface Trace {
  verdict: "accept" | "drop";
  /** The chain whose rule (or policy) dropped the packet. */
  droppedIn?: string;
  steps: TraceStep[];
  mark: number;
  ctMark: number;
  /** The conntrack events the connection was set to report (`ct event set`); absent: unchanged. */
  ctEvents?: string[];
  /** skb->priority after the walk (nflb's persistence uses it as scratch and puts it back). */
  priority: number;
  nat: NatResult[];
  counters: string[];
  /** `numgen` values taken, in order, and jhash values computed. */
  choices: { expr: string; value: number; of: number }[];
  hashes: { expr: string; value: number }[];
  /** The chance of this outcome (1 unless a numgen was enumerated). */
  share: number;
}

export class TraceError extends Error {}

const HOOKS: Record<NonNullable<Packet["path"]>, Hook[]> = {
  forward: ["prerouting", "forward", "postrouting"],
  input: ["prerouting", "input"],
  output: ["output", "postrouting"],
};

const MAX_OUTCOMES = 4096;

/** Traces one packet; a numgen without `opts.numgen` is an error (use traceAll). */
export function trace(r: Ruleset, p: Packet, opts: TraceOptions = {}): Trace {
  return new Walk(r, p, opts, []).run();
}

/**
 * Every outcome of the packet with its share: each `numgen` value is taken in turn (for
 * `numgen inc`, the order is the rotation the kernel walks). Outcomes stay in that order.
 */
export function traceAll(r: Ruleset, p: Packet, opts: TraceOptions = {}): Trace[] {
  const out: Trace[] = [];
  const pending: number[][] = [[]];
  while (pending.length) {
    const choices = pending.shift() as number[];
    try {
      out.push(new Walk(r, p, { ...opts, remember: false }, choices, true).run());
    } catch (e) {
      if (!(e instanceof NeedChoice)) throw e;
      if (out.length + pending.length + e.of > MAX_OUTCOMES)
        throw new TraceError("too many outcomes to enumerate");
      pending.unshift(...Array.from({ length: e.of }, (_, v) => [...choices, v]));
    }
  }
  return out;
}

class NeedChoice {
  constructor(readonly of: number) {}
}
/** The rule stops here without matching (a failed match, a lookup miss, a missing dependency). */
class Break {}
class Unknown {
  constructor(readonly field: string) {}
}

type V = Val | Val[];
type Flow = { v: "accept" | "drop" | "return" | "continue" | "jump" | "goto"; chain?: string } | null;

class Walk {
  private readonly t: Trace = {
    verdict: "accept",
    steps: [],
    mark: 0,
    ctMark: 0,
    priority: 0,
    nat: [],
    counters: [],
    choices: [],
    hashes: [],
    share: 1,
  };
  private readonly f: Required<Pick<Packet, "family">> & {
    saddr: bigint;
    daddr: bigint;
    sport?: number | undefined;
    dport?: number | undefined;
    ctStatus: number;
    pkttype: number;
  };
  private effects: string[] = [];
  private nextChoice = 0;
  private table: Table | null = null;
  private baseType = "";

  constructor(
    private readonly r: Ruleset,
    private readonly p: Packet,
    private readonly opts: TraceOptions,
    private readonly choices: number[],
    private readonly enumerate = false,
  ) {
    this.t.mark = p.mark ?? 0;
    this.t.ctMark = p.ctMark ?? 0;
    this.t.priority = p.priority ?? 0;
    this.f = {
      family: p.family,
      saddr: addr(p.family, p.saddr),
      daddr: addr(p.family, p.daddr),
      sport: p.sport,
      dport: p.dport,
      ctStatus: p.ctStatus ?? 0,
      pkttype: Number(parseAtom("pkttype", p.pkttype ?? "host").lo),
    };
  }

  run(): Trace {
    const hooks = HOOKS[this.p.path ?? "forward"].filter(
      (h) => !this.opts.hooks || this.opts.hooks.includes(h),
    );
    for (const hook of hooks) {
      for (const [table, chain] of this.baseChains(hook)) {
        // NAT chains see only a connection's first packet; later ones follow its binding.
        if (chain.base?.type === "nat" && (this.p.ctState ?? "new") !== "new") continue;
        this.table = table;
        this.baseType = chain.base?.type ?? "";
        if (this.runBase(hook, chain) === "drop") {
          this.t.verdict = "drop";
          return this.t;
        }
      }
    }
    return this.t;
  }

  private baseChains(hook: Hook): [Table, Chain][] {
    const fams = new Set(["inet", this.p.family === 4 ? "ip" : "ip6"]);
    const out: [Table, Chain][] = [];
    for (const t of this.r.tables.values()) {
      if (!fams.has(t.family)) continue;
      for (const c of t.chains.values()) if (c.base?.hook === hook) out.push([t, c]);
    }
    return out.sort((a, b) => (a[1].base?.priority ?? 0) - (b[1].base?.priority ?? 0));
  }

  private runBase(hook: Hook, base: Chain): "accept" | "drop" {
    const table = this.table as Table;
    const stack: [Chain, number][] = [];
    let cur = base;
    let i = 0;
    for (let guard = 0; ; guard++) {
      if (guard > 100_000) throw new TraceError(`chain ${base.name}: endless loop`);
      const rule = cur.rules[i++];
      if (!rule) {
        const back = stack.pop();
        if (!back) return this.policy(base);
        [cur, i] = back;
        continue;
      }
      const flow = this.runRule(hook, table, cur, rule);
      if (!flow || flow.v === "continue") continue;
      if (flow.v === "drop") this.t.droppedIn = cur.name;
      if (flow.v === "accept" || flow.v === "drop") return flow.v;
      if (flow.v === "return") {
        const back = stack.pop();
        if (!back) return this.policy(base);
        [cur, i] = back;
        continue;
      }
      const target = table.chains.get(flow.chain ?? "");
      if (!target) throw new TraceError(`chain ${flow.chain ?? ""} is not defined`);
      if (flow.v === "jump") {
        if (stack.length >= 16) throw new TraceError(`jump stack too deep at ${target.name}`);
        stack.push([cur, i]);
      }
      cur = target;
      i = 0;
    }
  }

  private policy(base: Chain): "accept" | "drop" {
    const p = base.base?.policy ?? "accept";
    if (p === "drop") this.t.droppedIn = base.name;
    return p;
  }

  private runRule(hook: Hook, table: Table, chain: Chain, rule: Rule): Flow {
    this.effects = [];
    const step = (extra: Partial<TraceStep> = {}): void => {
      this.t.steps.push({
        hook,
        table: `${table.family} ${table.name}`,
        chain: chain.name,
        rule: rule.text,
        effects: this.effects,
        ...extra,
      });
    };
    // nft's implicit dependencies (`ip6 daddr` needs IPv6) fail the rule whatever comes first.
    if (rule.stmts.some((s) => wrongFamily(s, this.p.family))) return null;
    try {
      for (const s of rule.stmts) {
        const flow = this.stmt(s, chain);
        if (flow) {
          step();
          return flow;
        }
      }
      step();
      return null;
    } catch (e) {
      if (e instanceof Break) return null;
      if (e instanceof Unknown) {
        step({ unknown: e.field });
        return null;
      }
      if (e instanceof TraceError)
        throw new TraceError(`chain ${chain.name}, rule "${rule.text}": ${e.message}`);
      throw e;
    }
  }

  /** One statement: null to go on with the rule, or where control goes. Throws Break to stop the rule. */
  private stmt(s: Stmt, chain: Chain): Flow {
    switch (s.k) {
      case "match":
        if (!this.match(s.left, s.op, s.right)) throw new Break();
        return null;
      case "vmap": {
        const key = this.eval(s.key);
        const e = this.lookup(s.map, s.key, key);
        if (!e?.value || !("verdict" in e.value)) throw new Break();
        const v = e.value;
        const shown =
          s.key.k === "numgen" || s.key.k === "jhash" ? "" : `${exprText(s.key)} = ${showKey(s.key, key)} `;
        this.effects.push(`${shown}→ ${v.verdict}${v.chain ? ` ${v.chain}` : ""}`);
        return v.chain ? { v: v.verdict, chain: v.chain } : { v: v.verdict };
      }
      case "set": {
        const type = s.target.type;
        const raw = this.eval(s.value, type);
        if (Array.isArray(raw) || typeof raw !== "bigint")
          throw new TraceError(`${exprText(s.value)} is not a number`);
        const val = Number(raw & 0xffffffffn);
        if (s.target.name === "meta mark") this.t.mark = val;
        else if (s.target.name === "ct mark") this.t.ctMark = val;
        else if (s.target.name === "meta pkttype") this.f.pkttype = val;
        else if (s.target.name === "meta priority") this.t.priority = val;
        else throw new TraceError(`unsupported: ${s.target.name} set`);
        const shown =
          type === "int" ? `0x${val.toString(16).padStart(8, "0")}` : formatVal(type, BigInt(val));
        this.effects.push(`${s.target.name} set ${shown}`);
        return null;
      }
      case "verdict":
        return s.chain ? { v: s.v, chain: s.chain } : { v: s.v };
      case "counter":
        if (s.name) {
          const n = s.name.k === "lit" ? s.name.text : this.eval(s.name);
          if (typeof n !== "string") throw new TraceError(`counter name ${exprText(s.name)} is not a name`);
          this.t.counters.push(n);
        }
        return null;
      case "comment":
        return null;
      case "ctevent":
        this.t.ctEvents = s.events;
        this.effects.push(`ct event set ${s.events.join(",")}`);
        return null;
      case "nat":
        return this.nat(s, chain);
      case "setop": {
        const set = this.set(s.set);
        const key = this.eval(s.key);
        const keys = Array.isArray(key) ? key : [key];
        const val = s.value ? this.eval(s.value, set.data) : undefined;
        this.effects.push(
          `${s.op} @${s.set} { ${showKey(s.key, key)}${val !== undefined ? ` : ${formatVal(set.data, val as Val)}` : ""} }`,
        );
        const at = set.elements.findIndex((e) => e.key.every((a, i) => inAtom(keys[i] as Val, a)));
        // A set declared `counter`: the added or refreshed element's counter counts this packet.
        if (s.op !== "delete" && set.flags.includes("counter"))
          this.t.counters.push(
            `@${set.name} ${keys.map((k, i) => formatVal(set.key[i] ?? "int", k as Val)).join(" . ")}`,
          );
        if (s.op === "delete") {
          if (this.opts.remember && at >= 0) set.elements.splice(at, 1);
          return null;
        }
        // Like the kernel's dynset: an existing element keeps its value (only its timeout restarts).
        if (this.opts.remember && at < 0) {
          const el: Elem = { key: keys.map((k) => ({ lo: k, hi: k })) };
          if (val !== undefined && !Array.isArray(val)) el.value = { val };
          set.elements.push(el);
        }
        return null;
      }
    }
  }

  private nat(s: Extract<Stmt, { k: "nat" }>, chain: Chain): Flow {
    if (this.baseType !== "nat") throw new TraceError(`${s.kind} in chain ${chain.name}, outside a nat hook`);
    if (s.kind === "masquerade") {
      this.t.nat.push({ kind: "masquerade", chain: chain.name });
      this.f.ctStatus |= 0x10;
      this.effects.push("masquerade");
      return { v: "accept" };
    }
    if (s.toExpr) return this.natFromMap(s, s.toExpr, chain);
    const to = s.to ?? "";
    const m = /^\[(.+)\]:(\d+)$/.exec(to) ?? /^([^:]+):(\d+)$/.exec(to) ?? [to, to];
    const a = m[1] ?? "";
    const port = m[2] !== undefined && m[2] !== a ? Number(m[2]) : undefined;
    const fam = s.fam ?? (isIPv4(a) ? 4 : 6);
    if (fam !== this.p.family) throw new Break();
    if (s.kind === "dnat") {
      this.t.nat.push({ kind: "dnat", addr: a, ...(port !== undefined ? { port } : {}), chain: chain.name });
      this.f.daddr = addr(fam, a);
      if (port !== undefined) this.f.dport = port;
      this.f.ctStatus |= 0x20;
    } else {
      this.t.nat.push({ kind: "snat", addr: a, chain: chain.name });
      this.f.ctStatus |= 0x10;
    }
    this.effects.push(`${s.kind} to ${to}`);
    return { v: "accept" };
  }

  /** `dnat ip to KEY map @m`: the element's value is the address (and port) to DNAT to. */
  private natFromMap(s: Extract<Stmt, { k: "nat" }>, e: Expr, chain: Chain): Flow {
    if (e.k !== "map") throw new TraceError(`${s.kind} to ${exprText(e)}: not a map lookup`);
    const key = this.eval(e.key);
    const el = this.lookup(e.set, e.key, key);
    if (!el?.value || "verdict" in el.value) throw new Break();
    const types = "named" in e.set ? this.set(e.set.named).dataParts : undefined;
    const vals = "vals" in el.value ? el.value.vals : [el.value.val];
    const fam = s.fam ?? this.p.family;
    if (fam !== this.p.family) throw new Break();
    const a = formatVal(types?.[0] ?? (fam === 4 ? "ipv4" : "ipv6"), vals[0] as Val);
    const port = vals.length > 1 ? Number(vals[1]) : undefined;
    return this.nat(
      {
        k: "nat",
        kind: s.kind,
        fam,
        to: port === undefined ? a : fam === 4 ? `${a}:${port}` : `[${a}]:${port}`,
      },
      chain,
    );
  }

  private set(name: string): NSet {
    const s = this.table?.sets.get(name);
    if (!s) throw new TraceError(`set @${name} is not defined`);
    return s;
  }

  private lookup(ref: SetRef, keyExpr: Expr, key: V): Elem | undefined {
    const keys = Array.isArray(key) ? key : [key];
    let elems: Elem[];
    let named: NSet | undefined;
    if ("named" in ref) elems = (named = this.set(ref.named)).elements;
    else {
      const types = keyTypes(keyExpr);
      const anon: NSet = {
        name: "anonymous",
        map: true,
        key: types,
        data: "verdict",
        flags: ["interval"],
        elements: [],
      };
      elems = ref.anon.map((toks) => {
        const hasValue = toks.some((t) => t.t === ":" && !t.quoted);
        return parseElement({ ...anon, map: hasValue }, toks);
      });
    }
    const found = elems.find(
      (e) => e.key.length === keys.length && e.key.every((a, i) => inAtom(keys[i] as Val, a)),
    );
    // A set declared `counter`: the element's counter counts this packet.
    if (found && named?.flags.includes("counter")) {
      const text = keys.map((k, i) => formatVal(named.key[i] ?? "int", k as Val)).join(" . ");
      this.t.counters.push(`@${named.name} ${text}`);
      if (this.opts.remember) (named.hits ??= new Map()).set(text, (named.hits.get(text) ?? 0) + 1);
    }
    return found;
  }

  private match(left: Expr, op: Extract<Stmt, { k: "match" }>["op"], right: Rhs): boolean {
    const v = this.eval(left);
    if (right.k === "set") {
      const found = this.lookup(right.ref, left, v) !== undefined;
      return op === "!=" ? !found : found;
    }
    const type = typeOfExpr(left) ?? "int";
    if (Array.isArray(v)) throw new TraceError(`comparing a concatenation with a value`);
    const atoms = right.items.map((l) => atomOf(type, l));
    if (BITMASK_TYPES.has(type) && typeof v === "bigint") {
      const bits = atoms.reduce((m, a) => m | (a.lo as bigint), 0n);
      if (right.mask) {
        const mask = right.mask.map((l) => atomOf(type, l)).reduce((m, a) => m | (a.lo as bigint), 0n);
        const eq = (v & mask) === bits;
        return op === "!=" ? !eq : eq;
      }
      if (op === "implicit") return (v & bits) !== 0n;
      if (op === "==") return v === bits;
      if (op === "!=") return v !== bits;
    }
    const hit = atoms.some((a) => inAtom(v, a));
    if (op === "implicit" || op === "==") return hit;
    if (op === "!=") return !hit;
    const a = atoms[0]?.lo;
    if (typeof v !== "bigint" || typeof a !== "bigint") throw new TraceError(`${op} on a non-number`);
    return op === "<" ? v < a : op === ">" ? v > a : op === "<=" ? v <= a : v >= a;
  }

  private eval(e: Expr, hint?: VType): V {
    switch (e.k) {
      case "sel":
        return this.field(e);
      case "lit":
        return atomOf(hint ?? "int", e).lo;
      case "concat":
        return e.parts.map((x) => {
          const v = this.eval(x);
          if (Array.isArray(v)) throw new TraceError("nested concatenation");
          return v;
        });
      case "binop": {
        const l = this.eval(e.left);
        if (typeof l !== "bigint") throw new TraceError(`${exprText(e)} on a non-number`);
        const type = typeOfExpr(e.left) ?? "int";
        const r = e.right.map((x) => atomOf(type, x).lo as bigint).reduce((a, b) => a | b, 0n);
        return e.op === "and" ? l & r : e.op === "or" ? l | r : l ^ r;
      }
      case "numgen": {
        let v: number;
        if (e.mod === 1) v = 0;
        else if (this.nextChoice < this.choices.length) v = this.choices[this.nextChoice++] ?? 0;
        else if (this.enumerate) throw new NeedChoice(e.mod);
        else if (this.opts.numgen !== undefined) v = this.opts.numgen % e.mod;
        else
          throw new TraceError(
            `${exprText(e)} picks at random or in turn: give a value (numgen) or use traceAll`,
          );
        if (this.enumerate && e.mod > 1) this.t.share /= e.mod;
        this.t.choices.push({ expr: exprText(e), value: v, of: e.mod });
        this.effects.push(`${exprText(e)} = ${v}`);
        return BigInt(v + e.offset);
      }
      case "jhash": {
        const parts = e.key.k === "concat" ? e.key.parts : [e.key];
        const bytes = parts.map((x) => {
          const v = this.eval(x);
          if (typeof v !== "bigint" || x.k !== "sel") throw new TraceError(`jhash of ${exprText(x)}`);
          return toBytes(v, x.len);
        });
        // Each field of a concatenation fills whole 32-bit registers.
        const key = bytes.length > 1 ? concatKey(...bytes) : (bytes[0] ?? new Uint8Array());
        const v = nftJhash(key, e.mod, e.seed) + e.offset;
        this.t.hashes.push({ expr: exprText(e), value: v });
        this.effects.push(`${exprText(e)} = ${v}`);
        return BigInt(v);
      }
      case "map": {
        const key = this.eval(e.key);
        const el = this.lookup(e.set, e.key, key);
        if (!el?.value || "verdict" in el.value) throw new Break();
        return "vals" in el.value ? el.value.vals : el.value.val;
      }
    }
  }

  /** A packet field, with nft's implicit dependencies (`ip saddr` needs IPv4, `tcp dport` TCP). */
  private field(s: Selector): Val {
    const p = this.p;
    if (s.fam !== undefined && s.fam !== p.family) throw new Break();
    if (s.l4) {
      if (p.l4proto === undefined) throw new Unknown("meta l4proto");
      if (!s.l4.includes(p.l4proto)) throw new Break();
    }
    const need = <T>(v: T | undefined, what = s.name): T => {
      if (v === undefined) throw new Unknown(what);
      return v;
    };
    const orig = p.ctOriginal;
    switch (s.name) {
      case "ip saddr":
      case "ip6 saddr":
        return this.f.saddr;
      case "ip daddr":
      case "ip6 daddr":
        return this.f.daddr;
      case "ip protocol":
      case "ip6 nexthdr":
      case "meta l4proto":
        return parseAtom("proto", need(p.l4proto, "meta l4proto")).lo;
      case "meta nfproto":
        return p.family === 4 ? 2n : 10n;
      case "tcp sport":
      case "udp sport":
      case "th sport":
        return BigInt(need(this.f.sport, "th sport"));
      case "tcp dport":
      case "udp dport":
      case "th dport":
        return BigInt(need(this.f.dport, "th dport"));
      case "tcp flags": {
        const flags = p.tcpFlags ?? ((p.ctState ?? "new") === "new" ? ["syn"] : ["ack"]);
        return flags.reduce((m, fl) => m | (parseAtom("tcpflags", fl).lo as bigint), 0n);
      }
      case "meta mark":
        return BigInt(this.t.mark >>> 0);
      case "meta priority":
        return BigInt(this.t.priority >>> 0);
      case "ct mark":
        return BigInt(this.t.ctMark >>> 0);
      case "meta pkttype":
        return BigInt(this.f.pkttype);
      case "meta iifname":
      case "meta iif":
        return need(p.iif, "iifname");
      case "meta oifname":
      case "meta oif":
        return need(p.oif, "oifname");
      case "ct state":
        return parseAtom("ctstate", p.ctState ?? "new").lo;
      case "ct status":
        return BigInt(this.f.ctStatus);
      case "ct direction":
        return p.ctDirection === "reply" ? 1n : 0n;
      case "ct original ip saddr":
      case "ct original ip6 saddr":
        if (s.type !== (p.family === 4 ? "ipv4" : "ipv6")) throw new Break();
        return orig ? addr(p.family, orig.saddr) : addr(p.family, p.saddr);
      case "ct original ip daddr":
      case "ct original ip6 daddr":
        if (s.type !== (p.family === 4 ? "ipv4" : "ipv6")) throw new Break();
        return orig ? addr(p.family, orig.daddr) : addr(p.family, p.daddr);
      case "ct original proto-src":
        return BigInt(need(orig ? orig.sport : p.sport, s.name));
      case "ct original proto-dst":
        return BigInt(need(orig ? orig.dport : p.dport, s.name));
      case "fib daddr type":
        return BigInt(fibType(p.family, this.f.daddr, p.localAddresses ?? []));
      case "fib saddr type":
        return BigInt(fibType(p.family, this.f.saddr, p.localAddresses ?? []));
      case "icmpv6 type":
        return parseAtom("icmpv6type", need(p.icmpv6Type)).lo;
      case "@th,64,128":
        return addr(6, need(p.ndTarget, "the neighbour solicitation's target"));
      default:
        if (s.name.startsWith("socket cgroupv2")) {
          if (p.cgroup === undefined) throw new Break();
          return p.cgroup;
        }
        throw new TraceError(`unsupported in the packet path: ${s.name}`);
    }
  }
}

function wrongFamily(s: Stmt, fam: 4 | 6): boolean {
  const inExpr = (e: Expr): boolean => {
    if (e.k === "sel") return e.fam !== undefined && e.fam !== fam;
    if (e.k === "concat") return e.parts.some(inExpr);
    if (e.k === "binop") return inExpr(e.left);
    if (e.k === "jhash" || e.k === "map") return inExpr(e.key);
    return false;
  };
  if (s.k === "match") return inExpr(s.left);
  if (s.k === "vmap") return inExpr(s.key);
  if (s.k === "set") return inExpr(s.value);
  if (s.k === "setop") return inExpr(s.key);
  if (s.k === "counter") return s.name ? inExpr(s.name) : false;
  if (s.k === "nat" && s.toExpr) return inExpr(s.toExpr);
  return false;
}

function addr(fam: 4 | 6, text: string): bigint {
  if (fam === 4 && isIPv4(text)) return ipv4ToInt(text);
  if (fam === 6 && !isIPv4(text)) return ipv6ToInt(text);
  throw new TraceError(`${text} is not an IPv${fam} address`);
}

function fibType(fam: 4 | 6, daddr: bigint, local: readonly string[]): number {
  if (local.some((l) => isIPv4(l) === (fam === 4) && addr(fam, l) === daddr)) return 2;
  if (fam === 4) {
    if (daddr === 0xffffffffn) return 3;
    if (daddr >> 28n === 0xen) return 5;
    if (daddr >> 24n === 127n) return 2;
  } else {
    if (daddr >> 120n === 0xffn) return 5;
    if (daddr === 1n) return 2;
  }
  return 1;
}

function atomOf(type: VType, l: Lit): Atom {
  return parseAtom(type, l.text, l.quoted);
}

function keyTypes(e: Expr): VType[] {
  const parts = e.k === "concat" ? e.parts : [e];
  return parts.map((x) => typeOfExpr(x) ?? "int");
}

function showKey(e: Expr, v: V): string {
  const types = keyTypes(e);
  return (Array.isArray(v) ? v : [v]).map((x, i) => formatVal(types[i], x)).join(" . ");
}

/** An expression in nft's syntax, for traces. */
export function exprText(e: Expr): string {
  switch (e.k) {
    case "sel":
      return e.name;
    case "lit":
      return e.quoted ? `"${e.text}"` : e.text;
    case "concat":
      return e.parts.map(exprText).join(" . ");
    case "binop":
      return `${exprText(e.left)} ${e.op} ${e.right.map((l) => l.text).join(" | ")}`;
    case "numgen":
      return `numgen ${e.mode} mod ${e.mod}${e.offset ? ` offset ${e.offset}` : ""}`;
    case "jhash":
      return `jhash ${exprText(e.key)} mod ${e.mod} seed 0x${e.seed.toString(16).padStart(8, "0")}${e.offset ? ` offset ${e.offset}` : ""}`;
    case "map":
      return `${exprText(e.key)} map ${"named" in e.set ? `@${e.set.named}` : "{ … }"}`;
  }
}
