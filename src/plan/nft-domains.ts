import type { Config } from "../config/schema.ts";
import { formatNftDuration } from "../config/duration.ts";
import type { NftObject } from "../nft/model.ts";
import { chain, typedSet } from "../nft/objects.ts";
import { DOMAINS_KEEP, domainChain, domainKeepSet, domainSet, ruleChain } from "../nft/names.ts";
import type { NftSection } from "./nft-table.ts";
import type { DomainSetsPlan, PlannedRule, UplinkPlan } from "./types.ts";

// Rules by domain name. Per rule and family two plain address sets (`type ipv4_addr`: nft 1.0.6
// cannot list sets declared `typeof jhash …`):
//
//   dom_NAME_4      what the DNS forwarder answered, each address with a timeout of its TTL (at
//                   least dns.min_ttl); the daemon writes it (`owner: "external"`: a diff never
//                   touches its elements, a full replace carries them with what is left of their time);
//   dom_NAME_keep4  addresses connections of the rule still use: a new connection to the rule adds
//                   its destination, and every packet of an established connection sent to an
//                   address in it refreshes it (`update`, timeout dns.keep). The packet path owns it.
//
// Two sets, because `update` from the packet path sets an element's expiry to now + its timeout:
// on the DNS set it would cut a long TTL short. A new connection matches the rule when its
// destination is in either set. The refresh costs one conntrack-state test per packet, and per
// domain rule one hash lookup (and a timestamp write when found) per packet of an established
// connection in the original direction; replies and new connections skip it.

export function domainSetsPlan(c: Config): DomainSetsPlan {
  return { size: c.dns?.max_entries_per_rule ?? 65_536, keepMs: c.dns?.keep ?? 300_000 };
}

const IP = { 4: "ip", 6: "ip6" } as const;
const TYPE = { 4: "ipv4_addr", 6: "ipv6_addr" } as const;

function domainRules(p: UplinkPlan): PlannedRule[] {
  return p.rules.filter((r) => r.domains);
}

/**
 * The domain rules' sets and chains, and the prerouting rule that refreshes the keep sets. Goes
 * before the uplinks' section: packets of pinned connections leave prerouting at `restore_mark`.
 */
export function buildDomains(p: UplinkPlan): NftSection {
  const rules = domainRules(p);
  const d = p.domains;
  if (!d || rules.length === 0) return { objects: [], prerouting: [], output: [], postroutingNat: [] };
  const objects: NftObject[] = [];
  const keep: string[] = [];
  for (const r of rules) {
    for (const f of [4, 6] as const) {
      objects.push(
        typedSet(domainSet(r.name, f), TYPE[f], [], {
          flags: ["timeout"],
          // Room for elements expired but not yet collected by the kernel: a full set fails a write.
          size: 2 * d.size,
          owner: "external",
        }),
      );
      objects.push(
        typedSet(domainKeepSet(r.name, f), TYPE[f], [], {
          flags: ["dynamic", "timeout"],
          timeout: formatNftDuration(d.keepMs),
          size: d.size,
          owner: "packet",
        }),
      );
      const k = domainKeepSet(r.name, f);
      keep.push(`${IP[f]} daddr @${k} update @${k} { ${IP[f]} daddr }`);
    }
    // A full keep set makes `update` fail and end its rule: so on its own line, before the goto.
    objects.push(
      chain(domainChain(r.name), [
        ...([4, 6] as const).map(
          (f) =>
            `meta nfproto ${f === 4 ? "ipv4" : "ipv6"} update @${domainKeepSet(r.name, f)} { ${IP[f]} daddr }`,
        ),
        `goto ${ruleChain(r.id)}`,
      ]),
    );
  }
  objects.push(chain(DOMAINS_KEEP, keep));
  return {
    objects,
    prerouting: [`ct state established ct direction original jump ${DOMAINS_KEEP}`],
    output: [],
    postroutingNat: [],
  };
}

/**
 * Lines of the `decide` chain for a domain rule: its destination sets, with the rule's other
 * matches (`rest(fam)`, the source set and ports), to `dom_NAME`. `rest` returns null for a family
 * the rule cannot apply to.
 */
export function domainDecisions(r: PlannedRule, rest: (fam: 4 | 6) => string | null): string[] {
  if (!r.domains) return [];
  const out: string[] = [];
  for (const f of [4, 6] as const) {
    const more = rest(f);
    if (more === null) continue;
    for (const set of [domainSet(r.name, f), domainKeepSet(r.name, f)])
      out.push([`${IP[f]} daddr @${set}`, more, `goto ${domainChain(r.name)}`].filter(Boolean).join(" "));
  }
  return out;
}

/** Every domain set of a plan, by rule and family (the daemon's forwarder writes these). */
export function domainSets(p: UplinkPlan | null): { rule: string; fam: 4 | 6; set: string; keep: string }[] {
  if (!p?.domains) return [];
  return domainRules(p).flatMap((r) =>
    ([4, 6] as const).map((fam) => ({
      rule: r.name,
      fam,
      set: domainSet(r.name, fam),
      keep: domainKeepSet(r.name, fam),
    })),
  );
}
