import type { Answer, Packet } from "dns-packet";
import { parseAddr } from "../net/ip.ts";

/** One rule's claim on a name: `domain` is the entry of `rules[].domains` that matched. */
export interface RuleMatch {
  rule: string;
  domain: string;
}

/** Longest CNAME chain followed inside one answer (resolvers stop far earlier). */
const MAX_CHAIN = 16;

/**
 * Names → rules, compiled once per config: exact names in one map, `*.suffix` entries in another,
 * looked up by walking the name's suffixes (at most 127 lookups for a 253-character name).
 */
export class DomainMatcher {
  private readonly exact = new Map<string, RuleMatch[]>();
  private readonly below = new Map<string, RuleMatch[]>();

  constructor(rules: readonly { name: string; domains?: readonly string[] | undefined }[]) {
    for (const r of rules)
      for (const d of r.domains ?? []) {
        const [map, key] = d.startsWith("*.") ? [this.below, d.slice(2)] : [this.exact, d];
        const list = map.get(key) ?? [];
        if (!list.some((m) => m.rule === r.name)) list.push({ rule: r.name, domain: d });
        map.set(key, list);
      }
  }

  get empty(): boolean {
    return this.exact.size === 0 && this.below.size === 0;
  }

  /** The rules `name` (any case, with or without the root dot) belongs to; the first entry per rule wins. */
  match(name: string): RuleMatch[] {
    const n = name.toLowerCase().replace(/\.$/, "");
    const out: RuleMatch[] = [...(this.exact.get(n) ?? [])];
    for (let i = n.indexOf("."); i >= 0; i = n.indexOf(".", i + 1)) {
      for (const m of this.below.get(n.slice(i + 1)) ?? [])
        if (!out.some((o) => o.rule === m.rule)) out.push(m);
    }
    return out;
  }
}

/** An address an answer gives for a rule's name. */
export interface AnsweredAddress {
  rule: string;
  domain: string;
  fam: 4 | 6;
  addr: string;
  ttlS: number;
}

/**
 * The A/AAAA addresses of `answer` that belong to rules: those of the question's name and of the
 * names its CNAMEs lead to within the answer section. A rule matches when any name on the way
 * from the question to the address does (a rule on `video.example` keeps the CDN addresses its
 * CNAME points at; a rule on `*.cdn.example` matches them too). Records of other names (an
 * upstream that adds unrelated data) are ignored.
 */
export function answeredAddresses(answer: Packet, matcher: DomainMatcher): AnsweredAddress[] {
  const q = answer.questions?.[0];
  if (!q || matcher.empty) return [];
  const records = answer.answers ?? [];
  const lower = (s: string) => s.toLowerCase().replace(/\.$/, "");
  // Names reachable from the question, each with the rules matched on the way there.
  const reach = new Map<string, RuleMatch[]>([[lower(q.name), matcher.match(q.name)]]);
  let frontier = [lower(q.name)];
  for (let step = 0; step < MAX_CHAIN && frontier.length; step++) {
    const next: string[] = [];
    for (const r of records) {
      if (r.type !== "CNAME" || typeof r.data !== "string") continue;
      const from = lower(r.name);
      if (!frontier.includes(from)) continue;
      const to = lower(r.data);
      if (reach.has(to)) continue;
      const via = reach.get(from) ?? [];
      const own = matcher.match(to).filter((m) => !via.some((v) => v.rule === m.rule));
      reach.set(to, [...via, ...own]);
      next.push(to);
    }
    frontier = next;
  }
  const out: AnsweredAddress[] = [];
  for (const r of records as Answer[]) {
    if ((r.type !== "A" && r.type !== "AAAA") || typeof r.data !== "string") continue;
    const rules = reach.get(lower(r.name));
    if (!rules?.length) continue;
    const a = parseAddr(r.data);
    if (!a || a.family !== (r.type === "A" ? 4 : 6)) continue;
    const ttlS = typeof r.ttl === "number" && r.ttl >= 0 ? r.ttl : 0;
    for (const m of rules) out.push({ rule: m.rule, domain: m.domain, fam: a.family, addr: a.text, ttlS });
  }
  return out;
}
