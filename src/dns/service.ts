import type { Packet } from "dns-packet";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { Config, DnsConfig } from "../config/schema.ts";
import { parseAddr, parseHostPort } from "../net/ip.ts";
import { domainSet, TABLE_REF } from "../nft/names.ts";
import type { Element } from "../nft/model.ts";
import { Forwarder, type DropReason, type Endpoint } from "./forwarder.ts";
import { answeredAddresses, DomainMatcher } from "./match.ts";
import { DomainTable, setWriteScript, type SetWrite, type TableLimits } from "./table.ts";
import { SetWriter } from "./writer.ts";

/** How often the table forgets what the kernel has expired. */
const PRUNE_MS = 5000;
/** Entries listed per rule at most (status and API). */
export const MAX_LISTED = 1000;

/** What the DNS service needs from the daemon. */
export interface DnsHost {
  /** Run `fn` with the kernel to itself (the reconciler's lock). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  applyNft(script: string): Promise<void>;
  /** Names of the sets the kernel holds now (as last applied); writes to others wait for a full replace. */
  appliedSets(): ReadonlySet<string>;
  log: {
    info(fields: Record<string, unknown>, msg: string): void;
    warn(fields: Record<string, unknown>, msg: string): void;
    error(fields: Record<string, unknown>, msg: string): void;
  };
  now?: () => number;
}

export interface DnsEntryStatus {
  address: string;
  domain: string;
  left_s: number;
}

export interface DnsRuleStatus {
  rule: string;
  domains: string[];
  entries4: number;
  entries6: number;
  entries?: DnsEntryStatus[];
}

export interface DnsStatus {
  listen: string[];
  upstream: string[];
  /** False when the forwarder could not bind its addresses (see error). */
  running: boolean;
  error: string | null;
  pending: number;
  entries: number;
  rules: DnsRuleStatus[];
}

/** `GET /api/v1/dns`: the status, with entries when asked, and what holds one address. */
export interface DnsView extends DnsStatus {
  matches?: { rule: string; domain: string; left_s: number }[];
}

function endpoint(s: string, defaultPort: number): Endpoint | null {
  const a = parseAddr(s);
  if (a) return { addr: a.text, family: a.family, port: defaultPort };
  const hp = parseHostPort(s);
  return "error" in hp ? null : { addr: hp.addr.text, family: hp.addr.family, port: hp.port };
}

function limitsOf(d: DnsConfig): TableLimits {
  return { perRule: d.max_entries_per_rule, total: d.max_entries, minTtlMs: d.min_ttl, maxTtlMs: d.max_ttl };
}

/** The forwarder's part of the config: a change restarts it. */
function forwarderKey(d: DnsConfig): string {
  return JSON.stringify([d.listen, d.upstream, d.timeout, d.max_pending, d.max_tcp]);
}

/**
 * `dns:` of `nflb run`: the forwarder, the table of answered addresses, and their writes into the
 * rules' DNS sets. The sets themselves are declared by the plan (src/plan/nft-domains.ts).
 */
export class DnsService {
  private forwarder: Forwarder | null = null;
  private key = "";
  private error: string | null = null;
  private matcher = new DomainMatcher([]);
  private rules: { name: string; domains: string[] }[] = [];
  private readonly table = new DomainTable({ perRule: 1, total: 1, minTtlMs: 1000, maxTtlMs: 1000 });
  private readonly writer: SetWriter;
  private readonly prune: NodeJS.Timeout;
  private config: DnsConfig | null = null;
  /** DNS sets the kernel held at the last reconcile. */
  private knownSets: ReadonlySet<string> = new Set();
  private readonly m: ReturnType<typeof dnsMetrics>;

  constructor(
    private readonly host: DnsHost,
    registry: Registry,
  ) {
    this.m = dnsMetrics(registry, () => this.metricsView());
    this.writer = new SetWriter((w) => this.writeSets(w), {
      onWrite: (seconds, n, ok) => {
        this.m.writes.inc({ result: ok ? "ok" : "error" });
        this.m.writeSeconds.observe(seconds);
        if (!ok) host.log.error({ elements: n }, "dns: could not write the domain sets");
      },
    });
    this.prune = setInterval(() => this.table.prune(this.now()), PRUNE_MS);
    this.prune.unref();
  }

  private now(): number {
    return this.host.now?.() ?? Date.now();
  }

  /**
   * A config (at start or reload): the matcher and limits at once; the forwarder (re)started when
   * its addresses or bounds changed. Throws when the forwarder cannot bind at start (`initial`).
   */
  async configure(c: Config, initial: boolean): Promise<void> {
    const d = c.dns ?? null;
    this.config = d;
    this.rules = c.rules.filter((r) => r.domains).map((r) => ({ name: r.name, domains: r.domains ?? [] }));
    this.matcher = new DomainMatcher(this.rules);
    if (d) {
      const gone = this.table.configure(limitsOf(d), this.rules);
      if (gone.length) void this.deleteElements(gone);
    } else this.table.configure({ perRule: 1, total: 1, minTtlMs: 1000, maxTtlMs: 1000 }, []);
    const key = d ? forwarderKey(d) : "";
    if (key === this.key) return;
    this.forwarder?.stop();
    this.forwarder = null;
    this.key = key;
    this.error = null;
    if (!d) return;
    const fw = new Forwarder({
      listen: d.listen.map((l) => endpoint(l, 53)).filter((e) => e !== null),
      upstream: d.upstream.map((u) => endpoint(u, 53)).filter((e) => e !== null),
      timeoutMs: d.timeout,
      maxPending: d.max_pending,
      maxTcp: d.max_tcp,
      events: {
        query: (transport) => this.m.queries.inc({ transport }),
        answer: (transport, hold) => {
          this.m.answers.inc({ transport });
          this.m.holdSeconds.observe(hold);
        },
        dropped: (reason: DropReason) => this.m.dropped.inc({ reason }),
        answered: (p) => this.onAnswer(p),
      },
      onError: (where, err) => this.host.log.warn({ where, err: err.message }, "dns forwarder"),
    });
    try {
      await fw.start();
      this.forwarder = fw;
      this.host.log.info({ listen: d.listen, upstream: d.upstream }, "dns forwarder listening");
    } catch (e) {
      this.error = (e as Error).message;
      this.key = "";
      this.host.log.error({ listen: d.listen, err: this.error }, "dns forwarder cannot listen");
      if (initial) throw new Error(`dns.listen: ${this.error}`, { cause: e });
    }
  }

  stop(): void {
    clearInterval(this.prune);
    this.forwarder?.stop();
    this.forwarder = null;
    this.writer.close();
  }

  /** An answer on its way to the client: its rule addresses into the table, and the kernel. */
  private onAnswer(p: Packet): Promise<void> | null {
    let found;
    try {
      found = answeredAddresses(p, this.matcher);
    } catch {
      return null;
    }
    if (found.length === 0) return null;
    const now = this.now();
    const writes: SetWrite[] = [];
    let urgent = false;
    for (const a of found) {
      const r = this.table.record(a.rule, a.fam, a.addr, a.ttlS, a.domain, now);
      this.m.updates.inc({ result: r });
      if (r === "new" || r === "refreshed")
        writes.push({ rule: a.rule, fam: a.fam, addr: a.addr, timeoutMs: this.table.lifetime(a.ttlS) });
      if (r === "new") urgent = true;
    }
    if (writes.length === 0) return null;
    const done = this.writer.write(writes, urgent);
    return urgent ? done : null;
  }

  private async writeSets(writes: SetWrite[]): Promise<void> {
    await this.host.exclusive(async () => {
      const sets = this.host.appliedSets();
      const script = setWriteScript(
        TABLE_REF,
        writes.filter((w) => sets.has(domainSet(w.rule, w.fam))),
        domainSet,
      );
      if (script) await this.host.applyNft(script);
    });
  }

  private async deleteElements(gone: { rule: string; fam: 4 | 6; addr: string }[]): Promise<void> {
    try {
      await this.host.exclusive(async () => {
        const sets = this.host.appliedSets();
        // Added first so the delete cannot fail on an element the kernel expired meanwhile.
        const lines = gone
          .filter((g) => sets.has(domainSet(g.rule, g.fam)))
          .flatMap((g) => [
            `add element ${TABLE_REF} ${domainSet(g.rule, g.fam)} { ${g.addr} }`,
            `delete element ${TABLE_REF} ${domainSet(g.rule, g.fam)} { ${g.addr} }`,
          ]);
        if (lines.length) await this.host.applyNft(lines.join("\n") + "\n");
      });
    } catch (e) {
      this.host.log.warn({ err: (e as Error).message }, "dns: could not delete addresses of removed domains");
    }
  }

  /**
   * After a reconcile: sets that are new in the kernel (a rule that gained domains in a reload) get
   * what the table already holds for them (answers between the reload and the diff that created
   * the set were not written: a diff leaves these sets' elements alone).
   */
  applied(sets: ReadonlySet<string>): void {
    const now = this.now();
    const writes: SetWrite[] = [];
    for (const r of this.rules)
      for (const fam of [4, 6] as const) {
        const name = domainSet(r.name, fam);
        if (!sets.has(name) || this.knownSets.has(name)) continue;
        for (const e of this.table.entries(now, r.name))
          if (e.fam === fam) writes.push({ rule: r.name, fam, addr: e.addr, timeoutMs: e.leftMs });
      }
    this.knownSets = new Set(sets);
    if (writes.length) void this.writer.write(writes, false);
  }

  /** The DNS sets' elements as they must be now, for a full replace of the table. */
  external(): { table: string; set: string; elements: readonly Element[] }[] {
    const now = this.now();
    return this.rules.flatMap((r) =>
      ([4, 6] as const).map((fam) => ({
        table: TABLE_REF,
        set: domainSet(r.name, fam),
        elements: this.table.elements(r.name, fam, now),
      })),
    );
  }

  /** Which domain rules hold `address` now (for `explain`). */
  lookup(address: string): { rule: string; domain: string; left_s: number }[] {
    const a = parseAddr(address);
    if (!a) return [];
    return this.table
      .lookup(a.family, a.text, this.now())
      .map((e) => ({ rule: e.rule, domain: e.domain, left_s: Math.ceil(e.leftMs / 1000) }));
  }

  view(rule?: string, address?: string): DnsView | null {
    const s = this.status(rule === "*" ? true : (rule ?? false));
    if (!s) return null;
    return address === undefined ? s : { ...s, matches: this.lookup(address) };
  }

  status(entries: boolean | string = false): DnsStatus | null {
    const d = this.config;
    if (!d) return null;
    const now = this.now();
    const counts = this.table.counts(now);
    return {
      listen: d.listen,
      upstream: d.upstream,
      running: this.forwarder !== null,
      error: this.error,
      pending: this.forwarder?.pendingCount ?? 0,
      entries: this.table.size,
      rules: this.rules.map((r) => {
        const c = counts.get(r.name) ?? { 4: 0, 6: 0 };
        const out: DnsRuleStatus = { rule: r.name, domains: r.domains, entries4: c[4], entries6: c[6] };
        if (entries === true || entries === r.name)
          out.entries = this.table
            .entries(now, r.name)
            .slice(0, MAX_LISTED)
            .map((e) => ({ address: e.addr, domain: e.domain, left_s: Math.ceil(e.leftMs / 1000) }));
        return out;
      }),
    };
  }

  private metricsView(): { rule: string; fam: 4 | 6; n: number }[] {
    const out = [];
    for (const [rule, c] of this.table.counts(this.now()))
      for (const fam of [4, 6] as const) out.push({ rule, fam, n: c[fam] });
    return out;
  }
}

/** The forwarder's metrics, in the daemon's registry. */
function dnsMetrics(registry: Registry, entries: () => { rule: string; fam: 4 | 6; n: number }[]) {
  const registers = [registry];
  new Gauge({
    name: "nflb_dns_set_entries",
    help: "addresses in a domain rule's DNS set (as the daemon wrote them, not yet expired)",
    labelNames: ["rule", "family"],
    registers,
    collect() {
      this.reset();
      for (const e of entries()) this.set({ rule: e.rule, family: `ipv${e.fam}` }, e.n);
    },
  });
  return {
    queries: new Counter({
      name: "nflb_dns_queries_total",
      help: "DNS queries forwarded to an upstream",
      labelNames: ["transport"],
      registers,
    }),
    answers: new Counter({
      name: "nflb_dns_answers_total",
      help: "DNS answers returned to clients",
      labelNames: ["transport"],
      registers,
    }),
    dropped: new Counter({
      name: "nflb_dns_dropped_total",
      help: "DNS messages dropped: malformed, oversized, not-a-query, pending-full, tcp-full, timeout, malformed-answer, unexpected-answer, upstream-error",
      labelNames: ["reason"],
      registers,
    }),
    updates: new Counter({
      name: "nflb_dns_set_updates_total",
      help: "answered rule addresses: new, refreshed (expiry moved later), unchanged, full (limit reached, not added)",
      labelNames: ["result"],
      registers,
    }),
    writes: new Counter({
      name: "nflb_dns_set_writes_total",
      help: "nft transactions writing the domain sets",
      labelNames: ["result"],
      registers,
    }),
    writeSeconds: new Histogram({
      name: "nflb_dns_set_write_seconds",
      help: "time of one domain-set write (nft transaction)",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    }),
    holdSeconds: new Histogram({
      name: "nflb_dns_answer_hold_seconds",
      help: "time an answer waited for its addresses to reach the kernel (0 for most)",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
  };
}
