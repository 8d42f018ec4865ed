import type { Element } from "../nft/model.ts";

export interface TableLimits {
  perRule: number;
  total: number;
  minTtlMs: number;
  maxTtlMs: number;
}

interface Entry {
  /** ms since the epoch. */
  expires: number;
  domain: string;
}

export type RecordResult = "new" | "refreshed" | "unchanged" | "full";

/** One address to write into a rule's DNS set, with the lifetime it has from now on. */
export interface SetWrite {
  rule: string;
  fam: 4 | 6;
  addr: string;
  timeoutMs: number;
}

/**
 * What the DNS sets hold, as the daemon wrote them: per rule and family, address → expiry and the
 * domain that put it there. The kernel expires elements by itself; this copy answers `status` and
 * `explain`, decides whether an answer extends an element (and so needs an nft write), carries the
 * elements into a full table replace with what is left of their time, and bounds memory.
 */
export class DomainTable {
  private readonly rules = new Map<string, Record<4 | 6, Map<string, Entry>>>();
  private count = 0;

  constructor(private limits: TableLimits) {}

  /** A new config: its limits, and only the rules that still have domains keep their entries. */
  /**
   * A new config: its limits, and only entries of a domain their rule still lists stay. Returns
   * those of rules that still exist (their sets stay, so the daemon deletes these elements).
   */
  configure(
    limits: TableLimits,
    rules: readonly { name: string; domains: readonly string[] }[],
  ): { rule: string; fam: 4 | 6; addr: string }[] {
    this.limits = limits;
    const keep = new Map(rules.map((r) => [r.name, new Set(r.domains)]));
    const gone: { rule: string; fam: 4 | 6; addr: string }[] = [];
    for (const [rule, fams] of this.rules) {
      const domains = keep.get(rule);
      for (const fam of [4, 6] as const)
        for (const [addr, e] of fams[fam])
          if (!domains?.has(e.domain)) {
            fams[fam].delete(addr);
            this.count--;
            if (domains) gone.push({ rule, fam, addr });
          }
      if (!domains) this.rules.delete(rule);
    }
    return gone;
  }

  get size(): number {
    return this.count;
  }

  /** The lifetime an answer's TTL gives an address: at least min_ttl, at most max_ttl. */
  lifetime(ttlS: number): number {
    return Math.min(this.limits.maxTtlMs, Math.max(this.limits.minTtlMs, Math.round(ttlS * 1000)));
  }

  /**
   * An answer gave `addr` for `rule`. Its expiry moves to now + lifetime when that is later (by
   * more than a second, or a fifth of the lifetime when shorter: repeated answers within that are
   * not written again); an answer never shortens it.
   */
  record(rule: string, fam: 4 | 6, addr: string, ttlS: number, domain: string, now: number): RecordResult {
    const lifetime = this.lifetime(ttlS);
    const expires = now + lifetime;
    let fams = this.rules.get(rule);
    const e = fams?.[fam].get(addr);
    if (e && e.expires > now) {
      if (expires <= e.expires + Math.min(1000, lifetime / 5)) return "unchanged";
      e.expires = expires;
      e.domain = domain;
      return "refreshed";
    }
    if (e) {
      e.expires = expires;
      e.domain = domain;
      return "new";
    }
    if (this.count >= this.limits.total || (fams?.[fam].size ?? 0) >= this.limits.perRule) {
      this.prune(now);
      if (this.count >= this.limits.total || (fams?.[fam].size ?? 0) >= this.limits.perRule) return "full";
    }
    if (!fams) {
      fams = { 4: new Map(), 6: new Map() };
      this.rules.set(rule, fams);
    }
    fams[fam].set(addr, { expires, domain });
    this.count++;
    return "new";
  }

  /** Forget what the kernel has expired by now. */
  prune(now: number): void {
    for (const fams of this.rules.values())
      for (const m of Object.values(fams))
        for (const [addr, e] of m)
          if (e.expires <= now) {
            m.delete(addr);
            this.count--;
          }
  }

  /** A rule's live elements with what is left of their time (for a full replace of the table). */
  elements(rule: string, fam: 4 | 6, now: number): Element[] {
    const out: Element[] = [];
    for (const [addr, e] of this.rules.get(rule)?.[fam] ?? [])
      if (e.expires > now)
        out.push({ key: addr, timeout: `${Math.max(1, Math.ceil((e.expires - now) / 1000))}s` });
    return out;
  }

  /** Live entries of a rule (or every rule), soonest to expire last. */
  entries(
    now: number,
    rule?: string,
  ): { rule: string; fam: 4 | 6; addr: string; domain: string; leftMs: number }[] {
    const out = [];
    for (const [r, fams] of this.rules) {
      if (rule !== undefined && r !== rule) continue;
      for (const fam of [4, 6] as const)
        for (const [addr, e] of fams[fam])
          if (e.expires > now) out.push({ rule: r, fam, addr, domain: e.domain, leftMs: e.expires - now });
    }
    return out.sort((a, b) => b.leftMs - a.leftMs);
  }

  /** Live entries per rule and family. */
  counts(now: number): Map<string, Record<4 | 6, number>> {
    const out = new Map<string, Record<4 | 6, number>>();
    for (const [r, fams] of this.rules) {
      const c = { 4: 0, 6: 0 };
      for (const fam of [4, 6] as const) for (const e of fams[fam].values()) if (e.expires > now) c[fam]++;
      out.set(r, c);
    }
    return out;
  }

  /** Which rules hold `addr` now, through which domain, for how much longer. */
  lookup(fam: 4 | 6, addr: string, now: number): { rule: string; domain: string; leftMs: number }[] {
    const out = [];
    for (const [rule, fams] of this.rules) {
      const e = fams[fam].get(addr);
      if (e && e.expires > now) out.push({ rule, domain: e.domain, leftMs: e.expires - now });
    }
    return out;
  }
}

/**
 * One transaction that sets each address's timeout, whether or not the set holds it already:
 * `add element` of an existing element leaves its timeout alone on kernels before 6.10, so each is
 * added (a no-op when present), deleted, and added again with its timeout.
 */
export function setWriteScript(
  table: string,
  writes: readonly SetWrite[],
  setName: (rule: string, fam: 4 | 6) => string,
): string {
  const bySet = new Map<string, SetWrite[]>();
  for (const w of writes) {
    const s = setName(w.rule, w.fam);
    const list = bySet.get(s) ?? [];
    list.push(w);
    bySet.set(s, list);
  }
  const out: string[] = [];
  for (const [s, ws] of bySet)
    for (let i = 0; i < ws.length; i += 512) {
      const chunk = ws.slice(i, i + 512);
      const keys = chunk.map((w) => w.addr).join(", ");
      out.push(`add element ${table} ${s} { ${keys} }`);
      out.push(`delete element ${table} ${s} { ${keys} }`);
      out.push(
        `add element ${table} ${s} { ${chunk.map((w) => `${w.addr} timeout ${Math.max(1, Math.ceil(w.timeoutMs / 1000))}s`).join(", ")} }`,
      );
    }
  return out.length ? out.join("\n") + "\n" : "";
}
