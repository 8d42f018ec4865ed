import { formatNftDuration } from "../config/duration.ts";
import type { PlannedRule, PlannedUplink, Target, UplinkPlan } from "../plan/types.ts";
import { runs } from "../plan/split.ts";
import { chainBlock, hex, mapBlock, q, setBlock, setMasked } from "./nft-text.ts";

// Chain names are prefixed so that no uplink name can collide with an nft keyword.
export const pinChain = (u: string) => `up_${u}_pin`;
const markChain = (u: string) => `up_${u}_mark`;
const egressChain = (u: string) => `up_${u}_egress`;
export const connCounter = (u: string) => `up_${u}_conns`;
const ruleChain = (r: PlannedRule) => `rule_${r.id}`;
const ruleTargetChain = (r: PlannedRule) => `rule_${r.id}_via`;
export const STICKY_SEED = 0x6e666c62;
export const stickyMap = (r: PlannedRule, fam: 4 | 6) => `rule_${r.id}_sticky${fam}`;

export interface NftSection {
  /** Declarations (sets, maps, counters, chains) inside `table inet nflb { … }`. */
  body: string[];
  /** Rules placed in the shared base chains, in order. */
  prerouting: string[];
  output: string[];
  postroutingNat: string[];
}

/** The parts of the uplink data plane that change with health: rewritten in place by `renderUplinkUpdate`. */
function dynamicParts(p: UplinkPlan) {
  const live = p.uplinks.filter((u) => u.live);
  const splitElems = (() => {
    if (!p.split) return [] as string[];
    if (p.split.method === "random") {
      return runs(p.split.slots).map(
        (r) => `${r.from === r.to ? r.from : `${r.from}-${r.to}`} : goto ${pinChain(r.name)}`,
      );
    }
    return p.split.slots.map((n, i) => `${i} : goto ${pinChain(n)}`);
  })();
  const balanceRules = balanceRulesOf(p);
  const ruleTargets = p.rules.map((r) => ({ chain: ruleTargetChain(r), rule: targetVerdict(r.target) }));
  const stickyLive = live.map((u) => `${hex(u.mark)} : goto ${pinChain(u.name)}`);
  return { splitElems, balanceRules, ruleTargets, stickyLive, splitInterval: p.split?.method === "random" };
}

function balanceRulesOf(p: UplinkPlan): string[] {
  if (!p.split) return ["drop"];
  const n = p.split.slots.length;
  const seed = hex(p.hashSeed);
  switch (p.split.method) {
    case "random":
      return [`numgen random mod ${n} vmap @split`];
    case "round-robin":
      return [`numgen inc mod ${n} vmap @split`];
    case "source-hash":
      return [
        `meta nfproto ipv4 jhash ip saddr mod ${n} seed ${seed} vmap @split`,
        `meta nfproto ipv6 jhash ip6 saddr mod ${n} seed ${seed} vmap @split`,
      ];
    case "source-dest-hash":
      return [
        `meta nfproto ipv4 jhash ip saddr . ip daddr mod ${n} seed ${seed} vmap @split`,
        `meta nfproto ipv6 jhash ip6 saddr . ip6 daddr mod ${n} seed ${seed} vmap @split`,
      ];
  }
}

function targetVerdict(t: Target): string {
  if (t.kind === "uplink") return `goto ${pinChain(t.uplink)}`;
  if (t.kind === "main") return "goto main_pin";
  return "goto balance";
}

/**
 * `serviceVips`: families whose service VIP sets (`svc_vips4/6`, declared by the services section)
 * exist. A LAN connection to a service is DNATed to a backend, not balanced over the uplinks.
 */
export function renderUplinks(p: UplinkPlan, serviceVips: readonly (4 | 6)[] = []): NftSection {
  const { mask, main } = p.layout;
  const d = dynamicParts(p);
  const body: string[] = [];
  const ifaces = p.uplinks.map((u) => q(u.iface));

  body.push(...setBlock("uplink_ifaces", "iifname", ifaces));
  if (p.balanceFrom) body.push(...setBlock("balance_from", "iifname", p.balanceFrom.map(q)));
  if (p.balanceSources) {
    body.push(...setBlock("balance_src4", "ip saddr", p.balanceSources.v4, ["interval"], ["auto-merge"]));
    body.push(...setBlock("balance_src6", "ip6 saddr", p.balanceSources.v6, ["interval"], ["auto-merge"]));
  }
  body.push(
    ...mapBlock("restore_mark", "ct mark : verdict", [
      ...p.uplinks.map((u) => `${hex(u.mark)} : goto ${markChain(u.name)}`),
      `${hex(main)} : goto main_mark`,
    ]),
  );
  body.push(
    ...mapBlock(
      "inbound",
      "iifname : verdict",
      p.uplinks.map((u) => `${q(u.iface)} : goto ${pinChain(u.name)}`),
    ),
  );
  body.push(
    ...mapBlock(
      "egress",
      "oifname : verdict",
      p.uplinks.map((u) => `${q(u.iface)} : goto ${egressChain(u.name)}`),
    ),
  );
  body.push(
    ...mapBlock("split", "numgen random mod 1 : verdict", d.splitElems, d.splitInterval ? ["interval"] : []),
  );
  body.push(...mapBlock("sticky_live", "ct mark : verdict", d.stickyLive));

  for (const u of p.uplinks) {
    body.push(`\tcounter ${connCounter(u.name)} {`, "\t}");
    body.push(...chainBlock(markChain(u.name), [setMasked("meta mark", u.mark, mask)]));
    body.push(
      ...chainBlock(pinChain(u.name), [
        setMasked("ct mark", u.mark, mask),
        setMasked("meta mark", u.mark, mask),
      ]),
    );
    body.push(...chainBlock(egressChain(u.name), egressRules(u, mask)));
  }
  body.push(...chainBlock("main_mark", [setMasked("meta mark", main, mask)]));
  body.push(
    ...chainBlock("main_pin", [setMasked("ct mark", main, mask), setMasked("meta mark", main, mask)]),
  );
  body.push(...chainBlock("balance", d.balanceRules));

  for (const r of p.rules) {
    body.push(...ruleDeclarations(r));
    body.push(...chainBlock(ruleTargetChain(r), [targetVerdict(r.target)]));
    body.push(...chainBlock(ruleChain(r), ruleChainRules(r, mask)));
  }
  body.push(...chainBlock("decide", decideRules(p, serviceVips)));

  return {
    body,
    prerouting: [
      // Packets of pinned connections: the conntrack mark decides the uplink (CONNMARK --restore-mark).
      `ct mark and ${hex(mask)} vmap @restore_mark`,
      // Connections that arrive on an uplink are answered by that uplink.
      "ct state new iifname vmap @inbound",
      "ct state new jump decide",
    ],
    output: [`ct mark and ${hex(mask)} vmap @restore_mark`],
    postroutingNat: ["oifname vmap @egress"],
  };
}

function egressRules(u: PlannedUplink, mask: number): string[] {
  // Whatever leaves by an uplink unpinned (the router's own traffic, unbalanced interfaces) is pinned
  // here, so a later change of primary cannot move it to a link with another source address.
  const rules = [
    `ct mark and ${hex(mask)} == 0 ${setMasked("ct mark", u.mark, mask)}`,
    `counter name ${connCounter(u.name)}`,
  ];
  if (u.nat === "masquerade") rules.push("masquerade");
  if (u.nat === "snat") {
    const v4 = u.addresses.find((a) => a.family === 4);
    const v6 = u.addresses.find((a) => a.family === 6);
    if (v4) rules.push(`meta nfproto ipv4 snat ip to ${v4.text}`);
    if (v6) rules.push(`meta nfproto ipv6 snat ip6 to ${v6.text}`);
  }
  return rules;
}

function decideRules(p: UplinkPlan, serviceVips: readonly (4 | 6)[]): string[] {
  const out: string[] = [];
  out.push(p.balanceFrom ? "iifname != @balance_from return" : 'iif "lo" return');
  if (p.balanceSources) {
    out.push(
      p.balanceSources.v4.length
        ? "meta nfproto ipv4 ip saddr != @balance_src4 return"
        : "meta nfproto ipv4 return",
      p.balanceSources.v6.length
        ? "meta nfproto ipv6 ip6 saddr != @balance_src6 return"
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
  for (const r of p.rules) out.push(...ruleMatches(r).map((m) => `${m}goto ${ruleChain(r)}`));
  out.push("goto balance");
  return out;
}

function ruleDeclarations(r: PlannedRule): string[] {
  const out: string[] = [];
  const sets: [string, string, string[]][] = [
    [`rule_${r.id}_dst4`, "ip daddr", r.dst4],
    [`rule_${r.id}_dst6`, "ip6 daddr", r.dst6],
    [`rule_${r.id}_src4`, "ip saddr", r.src4],
    [`rule_${r.id}_src6`, "ip6 saddr", r.src6],
  ];
  for (const [name, type, elems] of sets)
    if (elems.length) out.push(...setBlock(name, type, elems, ["interval"], ["auto-merge"]));
  if (r.stickyMs !== undefined) {
    const t = formatNftDuration(r.stickyMs);
    out.push(
      ...mapBlock(
        stickyMap(r, 4),
        "ip saddr . ip daddr : ct mark",
        [],
        ["dynamic", "timeout"],
        [`timeout ${t}`, "size 65536"],
      ),
    );
    // IPv6 pairs are keyed by their 32-bit hash: a 256-bit key plus a computed value overflows nft 1.0.6's registers.
    out.push(
      ...mapBlock(
        stickyMap(r, 6),
        "numgen random mod 1 : ct mark",
        [],
        ["dynamic", "timeout"],
        [`timeout ${t}`, "size 65536"],
      ),
    );
  }
  return out;
}

/** One nft match prefix per address family the rule can apply to (an empty list means it can't). */
export function ruleMatches(r: PlannedRule): string[] {
  const l4 = l4Match(r);
  const fams: string[] = [];
  for (const fam of [4, 6] as const) {
    const dst = fam === 4 ? r.dst4 : r.dst6;
    const src = fam === 4 ? r.src4 : r.src6;
    if ((r.hasDst && dst.length === 0) || (r.hasSrc && src.length === 0)) continue;
    const ip = fam === 4 ? "ip" : "ip6";
    const parts = [];
    if (dst.length) parts.push(`${ip} daddr @rule_${r.id}_dst${fam}`);
    if (src.length) parts.push(`${ip} saddr @rule_${r.id}_src${fam}`);
    if (r.protocol === "icmp") parts.push(fam === 4 ? "meta l4proto icmp" : "meta l4proto ipv6-icmp");
    else if (l4) parts.push(l4);
    fams.push(parts.join(" "));
  }
  // Neither family constrained: one rule covers both.
  if (!r.hasDst && !r.hasSrc && fams.length === 2 && r.protocol !== "icmp")
    return [fams[0] ? `${fams[0]} ` : ""];
  return fams.map((f) => `${f} `);
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
  if (r.stickyMs === undefined) return [`goto ${ruleTargetChain(r)}`];
  const m = hex(mask);
  const key = {
    4: "ip saddr . ip daddr",
    6: `jhash ip6 saddr . ip6 daddr mod 4294967295 seed ${hex(STICKY_SEED)}`,
  } as const;
  const nf = { 4: "meta nfproto ipv4", 6: "meta nfproto ipv6" } as const;
  return [
    // A remembered choice is read only into an all-zero conntrack mark, so no foreign bit is lost.
    ...([4, 6] as const).map((f) => `${nf[f]} ct mark 0 ct mark set ${key[f]} map @${stickyMap(r, f)}`),
    `ct mark and ${m} vmap @sticky_live`,
    // Remembered uplink is down: choose again. (The daemon deletes entries of a dead uplink; the
    // kernel cannot delete from a map in the packet path, and `update` never overwrites a value.)
    `jump ${ruleTargetChain(r)}`,
    ...([4, 6] as const).map((f) => `${nf[f]} update @${stickyMap(r, f)} { ${key[f]} : ct mark and ${m} }`),
  ];
}

/**
 * The health-dependent part as an in-place update: split map, balance rule (its modulus follows
 * the live weights), rule targets, live-uplink map. Counters, dynamic sets and conntrack survive.
 */
export function renderUplinkUpdate(p: UplinkPlan, table: string): string[] {
  const d = dynamicParts(p);
  const out = [`flush map ${table} split`];
  if (d.splitElems.length) out.push(`add element ${table} split { ${d.splitElems.join(", ")} }`);
  out.push(`flush chain ${table} balance`, ...d.balanceRules.map((r) => `add rule ${table} balance ${r}`));
  for (const t of d.ruleTargets)
    out.push(`flush chain ${table} ${t.chain}`, `add rule ${table} ${t.chain} ${t.rule}`);
  out.push(`flush map ${table} sticky_live`);
  if (d.stickyLive.length) out.push(`add element ${table} sticky_live { ${d.stickyLive.join(", ")} }`);
  return out;
}
