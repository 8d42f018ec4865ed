import { formatNftDuration } from "../config/duration.ts";
import type { PlannedRule, PlannedSplit, PlannedUplink, Target, UplinkPlan } from "./types.ts";
import { runs } from "./split.ts";
import type { Element, NftObject } from "../nft/model.ts";
import { chain, counter, kv, map, set } from "../nft/objects.ts";
import { hex, q, setMasked } from "../nft/text.ts";
import {
  BALANCE,
  BALANCE_FROM,
  balanceChain,
  balanceSources,
  DECIDE,
  EGRESS,
  egressChain,
  INBOUND,
  MAIN_MARK,
  MAIN_PIN,
  markChain,
  pinChain,
  RESTORE_MARK,
  ruleChain,
  ruleSet,
  ruleTargetChain,
  splitMap,
  stickyLive,
  stickyMap,
  UPLINK_IFACES,
  connCounter,
} from "../nft/names.ts";
import type { NftSection } from "./nft-table.ts";
import { domainDecisions } from "./nft-domains.ts";
import { localSourceGuard } from "./nft-local-source.ts";

/** jhash seed of the IPv6 sticky maps' key (src/explain/live.ts computes the same key). */
export const STICKY_SEED = 0x6e666c62;

function splitElements(split: PlannedSplit | null): Element[] {
  if (!split) return [];
  if (split.method === "random")
    return runs(split.slots).map((r) =>
      kv(r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`, `goto ${pinChain(r.name)}`),
    );
  return split.slots.map((n, i) => kv(`${i}`, `goto ${pinChain(n)}`));
}

const NFPROTO = { 4: "meta nfproto ipv4", 6: "meta nfproto ipv6" } as const;

/**
 * `balance` dispatches by family to `balance4`/`balance6`, each one rule indexing its own split
 * (`split4`, `split6`): a family that fails on one uplink changes only its own split's elements,
 * live map and (when the slot count moves) its own one-rule chain; nothing of the other family.
 */
function balanceDispatch(): string {
  return `meta nfproto vmap { ipv4 : goto ${balanceChain(4)}, ipv6 : goto ${balanceChain(6)} }`;
}

function balanceRule(p: UplinkPlan, split: PlannedSplit | null, fam: 4 | 6): string {
  // No uplink is live at all: dropped, as ever. No uplink carries this family (the other has
  // some): the main routing table decides, as for the router's own traffic of that family.
  if (!split) return p.split4 || p.split6 ? `goto ${MAIN_PIN}` : "drop";
  const n = split.slots.length;
  const seed = hex(p.hashSeed);
  const vmap = `vmap @${splitMap(fam)}`;
  const ip = fam === 4 ? "ip" : "ip6";
  switch (split.method) {
    case "random":
      return `numgen random mod ${n} ${vmap}`;
    case "round-robin":
      return `numgen inc mod ${n} ${vmap}`;
    case "source-hash":
      return `jhash ${ip} saddr mod ${n} seed ${seed} ${vmap}`;
    case "source-dest-hash":
      return `jhash ${ip} saddr . ${ip} daddr mod ${n} seed ${seed} ${vmap}`;
  }
}

function targetVerdict(t: Target): string {
  if (t.kind === "uplink") return `goto ${pinChain(t.uplink)}`;
  if (t.kind === "main") return `goto ${MAIN_PIN}`;
  return `goto ${BALANCE}`;
}

/** A rule's `rule_N_via` chain: one verdict, or one per family when a family's first `via` is down. */
function targetRules(r: PlannedRule): string[] {
  if (!r.target6) return [targetVerdict(r.target)];
  return [`${NFPROTO[4]} ${targetVerdict(r.target)}`, targetVerdict(r.target6)];
}

/**
 * The uplinks' part of `inet nflb`. Health and weights change only the `split4/6` and
 * `sticky_live4/6` elements and the small `balance` and `rule_N_via` chains; the diff (src/nft/diff.ts) turns
 * that into a small transaction.
 *
 * `serviceVips`: families whose service VIP sets (`svc_vips4/6`, declared by the services section)
 * exist. A LAN connection to a service is DNATed to a backend, not balanced over the uplinks.
 */
export function buildUplinks(p: UplinkPlan, serviceVips: readonly (4 | 6)[] = []): NftSection {
  const { mask, main } = p.layout;
  const objects: NftObject[] = [];

  objects.push(
    set(
      UPLINK_IFACES,
      "iifname",
      p.uplinks.map((u) => q(u.iface)),
    ),
  );
  if (p.balanceFrom) objects.push(set(BALANCE_FROM, "iifname", p.balanceFrom.map(q)));
  if (p.balanceSources) {
    const opts = { flags: ["interval"], autoMerge: true };
    objects.push(set(balanceSources(4), "ip saddr", p.balanceSources.v4, opts));
    objects.push(set(balanceSources(6), "ip6 saddr", p.balanceSources.v6, opts));
  }
  objects.push(
    map(RESTORE_MARK, "ct mark : verdict", [
      ...p.uplinks.map((u) => kv(hex(u.mark), `goto ${markChain(u.name)}`)),
      kv(hex(main), `goto ${MAIN_MARK}`),
    ]),
  );
  objects.push(
    map(
      INBOUND,
      "iifname : verdict",
      p.uplinks.map((u) => kv(q(u.iface), `goto ${pinChain(u.name)}`)),
    ),
  );
  objects.push(
    map(
      EGRESS,
      "oifname : verdict",
      p.uplinks.map((u) => kv(q(u.iface), `goto ${egressChain(u.name)}`)),
    ),
  );
  for (const fam of [4, 6] as const) {
    const split = fam === 4 ? p.split4 : p.split6;
    objects.push(
      map(
        splitMap(fam),
        "numgen random mod 1 : verdict",
        splitElements(split),
        split?.method === "random" ? { flags: ["interval"] } : {},
      ),
    );
  }
  for (const fam of [4, 6] as const)
    objects.push(
      map(
        stickyLive(fam),
        "ct mark : verdict",
        p.uplinks
          .filter((u) => (fam === 4 ? u.live4 : u.live6))
          .map((u) => kv(hex(u.mark), `goto ${pinChain(u.name)}`)),
      ),
    );

  for (const u of p.uplinks) {
    objects.push(counter(connCounter(u.name)));
    objects.push(chain(markChain(u.name), [setMasked("meta mark", u.mark, mask)]));
    objects.push(
      chain(pinChain(u.name), [setMasked("ct mark", u.mark, mask), setMasked("meta mark", u.mark, mask)]),
    );
    objects.push(chain(egressChain(u.name), egressRules(u, mask)));
  }
  objects.push(chain(MAIN_MARK, [setMasked("meta mark", main, mask)]));
  objects.push(chain(MAIN_PIN, [setMasked("ct mark", main, mask), setMasked("meta mark", main, mask)]));
  objects.push(chain(BALANCE, [balanceDispatch()]));
  objects.push(chain(balanceChain(4), [balanceRule(p, p.split4, 4)]));
  objects.push(chain(balanceChain(6), [balanceRule(p, p.split6, 6)]));

  for (const r of p.rules) {
    for (const o of ruleDeclarations(r)) objects.push(o);
    objects.push(chain(ruleTargetChain(r.id), targetRules(r)));
    objects.push(chain(ruleChain(r.id), ruleChainRules(r, mask)));
  }
  objects.push(chain(DECIDE, decideRules(p, serviceVips)));

  return {
    objects,
    prerouting: [
      ...restoreRules(mask),
      // Packets from balance.from with one of the router's own addresses as source (accept_local).
      ...localSourceGuard(p),
      // New connections: one conntrack state test per packet (decide starts with the inbound pin).
      `ct state new jump ${DECIDE}`,
    ],
    output: restoreRules(mask),
    postroutingNat: [`oifname vmap @${EGRESS}`],
  };
}

/**
 * Packets of pinned connections: the conntrack mark decides the uplink (CONNMARK --restore-mark),
 * and the packet leaves the chain (a pinned connection is never decided again, not even its
 * retransmitted SYN). Every packet of every connection passes here, so the usual case, a packet
 * mark still 0, is one rule with no map lookup and no jump: nflb's bits of the conntrack mark
 * copied as they are (a value no fwmark rule names routes as 0 would). A packet another firewall
 * marked before us goes through `restore_mark`, whose chains write only the bits inside the mask.
 */
function restoreRules(mask: number): string[] {
  const m = hex(mask);
  return [
    `meta mark 0 ct mark and ${m} != 0 meta mark set ct mark and ${m} accept`,
    `meta mark != 0 ct mark and ${m} vmap @${RESTORE_MARK}`,
  ];
}

function egressRules(u: PlannedUplink, mask: number): string[] {
  // Whatever leaves by an uplink unpinned (the router's own traffic, unbalanced interfaces) is pinned
  // here, so a later change of primary cannot move it to a link with another source address.
  const rules = [`ct mark and ${hex(mask)} == 0 ${setMasked("ct mark", u.mark, mask)}`];
  // The counter and masquerade in one rule: one rule less on every new connection.
  if (u.nat === "masquerade") rules.push(`counter name ${connCounter(u.name)} masquerade`);
  else rules.push(`counter name ${connCounter(u.name)}`);
  if (u.nat === "snat") {
    const v4 = u.addresses.find((a) => a.family === 4);
    const v6 = u.addresses.find((a) => a.family === 6);
    if (v4) rules.push(`meta nfproto ipv4 snat ip to ${v4.text}`);
    if (v6) rules.push(`meta nfproto ipv6 snat ip6 to ${v6.text}`);
  }
  return rules;
}

/**
 * The conntrack events a balanced connection reports while passive health listens, when the config
 * asks for it (`balance.conntrack_events: minimal`: it hides the rest from every other listener):
 * its start (NEW), its first answer (the UPDATE that clears UNREPLIED) and its end (DESTROY: a SYN
 * refused with a RST shows only there), not every TCP state change after that: ~7 events per TCP
 * connection down to 3, filtered in the kernel before a message is built (conntrack 1.4.7 filters
 * its event stream in user space only: it would still receive, parse and drop them). Only
 * connections nflb balances, never inbound ones or a service's DNATed flows (whose flow monitor
 * follows TCP states). nft lists the flags in this (bit) order.
 */
export const PASSIVE_CT_EVENTS = "new,destroy,reply";

function decideRules(p: UplinkPlan, serviceVips: readonly (4 | 6)[]): string[] {
  // Connections that arrive on an uplink are answered by that uplink.
  const out: string[] = [`iifname vmap @${INBOUND}`];
  out.push(p.balanceFrom ? `iifname != @${BALANCE_FROM} return` : 'iif "lo" return');
  if (p.balanceSources) {
    out.push(
      p.balanceSources.v4.length
        ? `meta nfproto ipv4 ip saddr != @${balanceSources(4)} return`
        : "meta nfproto ipv4 return",
      p.balanceSources.v6.length
        ? `meta nfproto ipv6 ip6 saddr != @${balanceSources(6)} return`
        : "meta nfproto ipv6 return",
    );
  }
  // Traffic for the router itself is not balanced (routing delivers it locally anyway).
  out.push("fib daddr type { local, broadcast, multicast } return");
  if (serviceVips.includes(4))
    out.push(
      "meta nfproto ipv4 meta l4proto { tcp, udp } ip daddr . meta l4proto . th dport @svc_vips4 return",
    );
  if (serviceVips.includes(6))
    out.push(
      "meta nfproto ipv6 meta l4proto { tcp, udp } ip6 daddr . meta l4proto . th dport @svc_vips6 return",
    );
  // Past the returns: the connections nflb balances, about to get an uplink's mark.
  if (p.passiveEvents) out.push(`ct event set ${PASSIVE_CT_EVENTS}`);
  for (const r of p.rules) {
    for (const m of ruleMatches(r)) out.push(`${m}goto ${ruleChain(r.id)}`);
    for (const m of domainDecisions(r, (fam) => matchesBesidesDestination(r, fam))) out.push(m);
  }
  out.push(`goto ${BALANCE}`);
  return out;
}

const INTERVAL = ["interval"] as const;

/**
 * A rule's prefix list as set elements, once per list: the planner hands back the same list while
 * the config stays (src/plan/uplinks.ts), so a health update's diff skips the 10,000 elements of
 * a large rule by identity instead of comparing them.
 */
const prefixMemo = new WeakMap<readonly string[], readonly Element[]>();

function prefixElements(keys: readonly string[]): readonly Element[] {
  let out = prefixMemo.get(keys);
  if (!out) prefixMemo.set(keys, (out = keys.map((key) => ({ key }))));
  return out;
}

function ruleDeclarations(r: PlannedRule): NftObject[] {
  const out: NftObject[] = [];
  const sets: [string, string, string[]][] = [
    [ruleSet(r.id, "dst", 4), "ip daddr", r.dst4],
    [ruleSet(r.id, "dst", 6), "ip6 daddr", r.dst6],
    [ruleSet(r.id, "src", 4), "ip saddr", r.src4],
    [ruleSet(r.id, "src", 6), "ip6 saddr", r.src6],
  ];
  for (const [name, type, elems] of sets)
    if (elems.length)
      out.push({
        kind: "set",
        name,
        typeof: type,
        flags: INTERVAL,
        autoMerge: true,
        elements: prefixElements(elems),
      });
  if (r.stickyMs !== undefined) {
    const sticky = {
      flags: ["dynamic", "timeout"],
      timeout: formatNftDuration(r.stickyMs),
      size: 65536,
      owner: "packet",
    } as const;
    out.push(map(stickyMap(r.id, 4), "ip saddr . ip daddr : ct mark", [], sticky));
    // IPv6 pairs are keyed by their 32-bit hash: a 256-bit key plus a computed value overflows nft 1.0.6's registers.
    out.push(map(stickyMap(r.id, 6), "numgen random mod 1 : ct mark", [], sticky));
  }
  return out;
}

/** One nft match prefix per address family the rule can apply to (an empty list means it can't). */
export function ruleMatches(r: PlannedRule): string[] {
  // A rule by domain alone matches only through its domain sets (domainDecisions).
  if (r.domains && !r.hasDst) return [];
  const l4 = l4Match(r);
  const fams: string[] = [];
  for (const fam of [4, 6] as const) {
    const dst = fam === 4 ? r.dst4 : r.dst6;
    const src = fam === 4 ? r.src4 : r.src6;
    if ((r.hasDst && dst.length === 0) || (r.hasSrc && src.length === 0)) continue;
    const ip = fam === 4 ? "ip" : "ip6";
    const parts = [];
    if (dst.length) parts.push(`${ip} daddr @${ruleSet(r.id, "dst", fam)}`);
    if (src.length) parts.push(`${ip} saddr @${ruleSet(r.id, "src", fam)}`);
    if (r.protocol === "icmp") parts.push(fam === 4 ? "meta l4proto icmp" : "meta l4proto ipv6-icmp");
    else if (l4) parts.push(l4);
    fams.push(parts.join(" "));
  }
  // Neither family constrained: one rule covers both.
  if (!r.hasDst && !r.hasSrc && fams.length === 2 && r.protocol !== "icmp")
    return [fams[0] ? `${fams[0]} ` : ""];
  return fams.map((f) => `${f} `);
}

/** The rule's matches but its destination, for one family; null when it cannot apply to that family. */
function matchesBesidesDestination(r: PlannedRule, fam: 4 | 6): string | null {
  const src = fam === 4 ? r.src4 : r.src6;
  if (r.hasSrc && src.length === 0) return null;
  const parts = [];
  if (src.length) parts.push(`${fam === 4 ? "ip" : "ip6"} saddr @${ruleSet(r.id, "src", fam)}`);
  const l4 = l4Match(r);
  if (r.protocol === "icmp") parts.push(fam === 4 ? "meta l4proto icmp" : "meta l4proto ipv6-icmp");
  else if (l4) parts.push(l4);
  return parts.join(" ");
}

function l4Match(r: PlannedRule): string {
  const ports =
    r.ports === undefined
      ? ""
      : Array.isArray(r.ports)
        ? r.ports.length === 1
          ? `${r.ports[0]}`
          : `{ ${r.ports.join(", ")} }`
        : `${r.ports.from}-${r.ports.to}`;
  if (r.protocol === "tcp" || r.protocol === "udp")
    return ports ? `${r.protocol} dport ${ports}` : `meta l4proto ${r.protocol}`;
  if (ports) return `meta l4proto { tcp, udp } th dport ${ports}`;
  return "";
}

function ruleChainRules(r: PlannedRule, mask: number): string[] {
  if (r.stickyMs === undefined) return [`goto ${ruleTargetChain(r.id)}`];
  const m = hex(mask);
  const key = {
    4: "ip saddr . ip daddr",
    6: `jhash ip6 saddr . ip6 daddr mod 4294967295 seed ${hex(STICKY_SEED)}`,
  } as const;
  const nf = { 4: "meta nfproto ipv4", 6: "meta nfproto ipv6" } as const;
  return [
    // A remembered choice is read only into an all-zero conntrack mark, so no foreign bit is lost.
    ...([4, 6] as const).map((f) => `${nf[f]} ct mark 0 ct mark set ${key[f]} map @${stickyMap(r.id, f)}`),
    // Per family: a remembered uplink whose IPv6 is down is chosen again for IPv6 only.
    ...([4, 6] as const).map((f) => `${nf[f]} ct mark and ${m} vmap @${stickyLive(f)}`),
    // Remembered uplink is down: choose again. (The daemon deletes entries of a dead uplink; the
    // kernel cannot delete from a map in the packet path, and `update` never overwrites a value.)
    `jump ${ruleTargetChain(r.id)}`,
    ...([4, 6] as const).map(
      (f) => `${nf[f]} update @${stickyMap(r.id, f)} { ${key[f]} : ct mark and ${m} }`,
    ),
  ];
}

/**
 * The sticky maps of a plan's rules (the daemon purges a dead uplink's entries from them), of one
 * family or both.
 */
export function stickyMaps(p: UplinkPlan, fam?: 4 | 6): string[] {
  const fams = fam === undefined ? ([4, 6] as const) : [fam];
  return p.rules.filter((r) => r.stickyMs !== undefined).flatMap((r) => fams.map((f) => stickyMap(r.id, f)));
}
