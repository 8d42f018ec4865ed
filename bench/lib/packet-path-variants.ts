// Router configurations between the bare `numgen` map design and nflb's full ruleset, for
// bench/packet-path-pieces.ts: each variant is nflb (as `nflb apply` installs it) with one piece
// taken away or changed, or the bare design with one of nflb's pieces added, so that interleaved
// measurements say which piece costs what.
import {
  bareNumgenScript,
  installConfig,
  nflbApply,
  routerRun,
  type InstallContext,
} from "./router-configs.ts";
import { ROUTER_LAN_IF, type BenchRouter, type BenchUplink } from "./uplink-topology.ts";

export interface Variant {
  name: string;
  label: string;
  install(ctx: InstallContext, r: BenchRouter, uplinks: readonly BenchUplink[]): Promise<void>;
}

/** nflb's defaults for the bench config (mark_mask 0xff00, table_base 200, rule_priority_base 10000). */
const nflbMark = (k: number) => (k + 1) << 8;
const RULE_BASE = 10000;

async function sysctlUplinks(
  ctx: InstallContext,
  r: BenchRouter,
  uplinks: readonly BenchUplink[],
  kv: string,
) {
  await routerRun(ctx, r, ["sysctl", "-q", "-w", ...uplinks.map((u) => `net.ipv4.conf.${u.iface}.${kv}`)]);
}

/** accept_local=1 on the LAN side, and on the uplinks with rp_filter=0 there when `uplinks`. */
async function acceptLocal(
  ctx: InstallContext,
  r: BenchRouter,
  ups: readonly BenchUplink[],
  uplinks: boolean,
) {
  const kv = [`net.ipv4.conf.${ROUTER_LAN_IF}.accept_local=1`];
  if (uplinks)
    for (const u of ups)
      kv.push(`net.ipv4.conf.${u.iface}.rp_filter=0`, `net.ipv4.conf.${u.iface}.accept_local=1`);
  await routerRun(ctx, r, ["sysctl", "-q", "-w", ...kv]);
}

const GUARD = "meta nfproto ipv4 iifname @balance_from fib saddr type local drop";

/** nflb applied, its local-source rule in prerouting replaced by `rule` (null: deleted). */
async function nflbInstallGuard(
  ctx: InstallContext,
  r: BenchRouter,
  ups: readonly BenchUplink[],
  rule: string | null,
) {
  await nflbApply(ctx, r, ups);
  const listing = await routerRun(ctx, r, ["nft", "-a", "list", "chain", "inet", "nflb", "prerouting"]);
  const handle = /fib saddr type local drop # handle (\d+)/.exec(listing)?.[1];
  if (!handle) throw new Error(`${r.role}: no local-source rule in prerouting`);
  const at = ["inet", "nflb", "prerouting", "handle", handle];
  if (rule === null) await routerRun(ctx, r, ["nft", "delete", "rule", ...at]);
  else await routerRun(ctx, r, ["nft", "-f", "-"], `replace rule ${at.join(" ")} ${rule}\n`);
}

/** Flush one chain of `inet nflb` and give it these rules instead (one transaction). */
async function replaceChain(ctx: InstallContext, r: BenchRouter, chain: string, rules: readonly string[]) {
  const script = [
    `flush chain inet nflb ${chain}`,
    ...rules.map((x) => `add rule inet nflb ${chain} ${x}`),
    "",
  ];
  await routerRun(ctx, r, ["nft", "-f", "-"], script.join("\n"));
}

/** Delete nflb's ip rules whose priority (offset from the base) passes `drop`. */
async function dropRules(ctx: InstallContext, r: BenchRouter, drop: (offset: number) => boolean) {
  const rules = JSON.parse(await routerRun(ctx, r, ["ip", "-j", "rule", "show"])) as { priority: number }[];
  const lines = rules
    .filter((x) => x.priority >= RULE_BASE && x.priority < RULE_BASE + 1000 && drop(x.priority - RULE_BASE))
    .map((x) => `rule del priority ${x.priority}`);
  if (lines.length) await ctx.net.ipBatch(r.role, lines);
}

export const VARIANTS: Variant[] = [
  {
    name: "ng",
    label: "bare numgen map design",
    install: (ctx, r, ups) => installConfig(ctx, { kind: "numgen", uplinks: ups.length }, r),
  },
  {
    name: "ng-rp2",
    label: "bare + rp_filter=2 on uplinks",
    async install(ctx, r, ups) {
      await installConfig(ctx, { kind: "numgen", uplinks: ups.length }, r);
      await sysctlUplinks(ctx, r, ups, "rp_filter=2");
    },
  },
  {
    name: "ng-sup",
    label: "bare + `lookup main suppress_prefixlength 0` first",
    async install(ctx, r, ups) {
      await installConfig(ctx, { kind: "numgen", uplinks: ups.length }, r);
      await ctx.net.ipBatch(r.role, ["rule add priority 999 lookup main suppress_prefixlength 0"]);
    },
  },
  {
    name: "ng-from",
    label: "bare + from/guard rules per uplink",
    async install(ctx, r, ups) {
      await installConfig(ctx, { kind: "numgen", uplinks: ups.length }, r);
      await ctx.net.ipBatch(r.role, [
        ...ups.flatMap((u, k) => [
          `rule add priority ${1500 + k} from ${u.address} table ${100 + k}`,
          `rule add priority ${1700 + k} from ${u.address} unreachable`,
        ]),
      ]);
    },
  },
  {
    name: "ng-nflbroute",
    label: "bare nft on nflb's routing + sysctls",
    async install(ctx, r, ups) {
      await nflbApply(ctx, r, ups);
      await routerRun(ctx, r, ["nft", "delete", "table", "inet", "nflb"]);
      await routerRun(ctx, r, ["nft", "-f", "-"], bareNumgenScript(ups, nflbMark));
    },
  },
  {
    name: "nflb",
    label: "nflb as applied",
    install: (ctx, r, ups) => nflbApply(ctx, r, ups),
  },
  {
    name: "nflb-old",
    label: "nflb before the packet-path pass (restore through the map, src_valid_mark 0)",
    async install(ctx, r, ups) {
      await nflbApply(ctx, r, ups);
      await sysctlUplinks(ctx, r, ups, "src_valid_mark=0");
      await routerRun(
        ctx,
        r,
        ["nft", "-f", "-"],
        [
          "flush chain inet nflb prerouting",
          "flush chain inet nflb output",
          "add rule inet nflb prerouting ct mark and 0xff00 vmap @restore_mark",
          "add rule inet nflb prerouting ct state new jump decide",
          "add rule inet nflb output ct mark and 0xff00 vmap @restore_mark",
          "add rule inet nflb output socket cgroupv2 level 1 vmap @exec_via",
          "",
        ].join("\n"),
      );
    },
  },
  {
    name: "masq1",
    label: "one link, nft masquerade (conntrack + NAT, no balancing)",
    install: (ctx, r) => installConfig(ctx, { kind: "masq1", uplinks: 1 }, r),
  },
  {
    name: "masq-rules",
    label: "one-link masquerade + the bare design's fwmark rules (no marks set)",
    install: (ctx, r, ups) => installConfig(ctx, { kind: "masqrules", uplinks: ups.length }, r),
  },
  {
    name: "mqr-al",
    label: "masq-rules + accept_local=1 on the LAN side (its reverse-path check back on the fast path)",
    async install(ctx, r, ups) {
      await installConfig(ctx, { kind: "masqrules", uplinks: ups.length }, r);
      await acceptLocal(ctx, r, ups, false);
    },
  },
  {
    name: "mqr-al2",
    label: "masq-rules + accept_local=1 on the LAN side and the uplinks (rp_filter 0)",
    async install(ctx, r, ups) {
      await installConfig(ctx, { kind: "masqrules", uplinks: ups.length }, r);
      await acceptLocal(ctx, r, ups, true);
    },
  },
  {
    name: "ecmp",
    label: "multipath default route, L4 hash, masquerade (no marks, rules or pinning)",
    install: (ctx, r, ups) => installConfig(ctx, { kind: "ecmp", uplinks: ups.length }, r),
  },
  {
    name: "nflb-nofib",
    label: "nflb without decide's `fib daddr type` test",
    async install(ctx, r, ups) {
      await nflbApply(ctx, r, ups);
      await replaceChain(ctx, r, "decide", [
        "iifname vmap @inbound",
        "iifname != @balance_from return",
        "goto balance",
      ]);
    },
  },
  {
    name: "nflb-min",
    label:
      "nflb with decide cut to the split (no inbound pin, fib test, family dispatch) and no egress counters",
    async install(ctx, r, ups) {
      await nflbApply(ctx, r, ups);
      await replaceChain(ctx, r, "decide", [
        "iifname != @balance_from return",
        `numgen random mod ${ups.length} vmap @split4`,
      ]);
      for (const [k] of ups.entries())
        await replaceChain(ctx, r, `up_isp${k}_egress`, [
          "ct mark and 0xff00 == 0 ct mark set ct mark and 0xffff00ff or " + `0x${nflbMark(k).toString(16)}`,
          "masquerade",
        ]);
    },
  },
  {
    name: "nflb-rp0",
    label: "nflb, rp_filter=0 on uplinks",
    async install(ctx, r, ups) {
      await nflbApply(ctx, r, ups);
      await sysctlUplinks(ctx, r, ups, "rp_filter=0");
    },
  },
  {
    name: "nflb-noal",
    label: "nflb without accept_local (sysctl 0 on the LAN side, no local-source rule): before this pass",
    async install(ctx, r, ups) {
      await nflbApply(ctx, r, ups);
      await routerRun(ctx, r, ["sysctl", "-q", "-w", `net.ipv4.conf.${ROUTER_LAN_IF}.accept_local=0`]);
      const listing = await routerRun(ctx, r, ["nft", "-a", "list", "chain", "inet", "nflb", "prerouting"]);
      const handle = /fib saddr type local drop # handle (\d+)/.exec(listing)?.[1];
      if (!handle) throw new Error(`${r.role}: no local-source rule in prerouting`);
      await routerRun(ctx, r, ["nft", "delete", "rule", "inet", "nflb", "prerouting", "handle", handle]);
    },
  },
  {
    name: "nflb-nog",
    label: "nflb, accept_local kept, no local-source rule",
    install: (ctx, r, ups) => nflbInstallGuard(ctx, r, ups, null),
  },
  {
    name: "nflb-gpre",
    label: "nflb, the local-source rule first in prerouting (every packet)",
    async install(ctx, r, ups) {
      await nflbInstallGuard(ctx, r, ups, null);
      await routerRun(ctx, r, ["nft", "insert", "rule", "inet", "nflb", "prerouting", ...GUARD.split(" ")]);
    },
  },
  {
    name: "nflb-gset",
    label: "nflb, the local-source rule by a set of the router's addresses",
    async install(ctx, r, ups) {
      const own = [...ups.map((u) => u.address), r.lan.router];
      await nflbInstallGuard(
        ctx,
        r,
        ups,
        `meta nfproto ipv4 iifname @balance_from ip saddr { ${own.join(", ")} } drop`,
      );
    },
  },
  {
    name: "nflb-al2",
    label: "nflb + accept_local=1 on the uplinks too, rp_filter=0 there",
    async install(ctx, r, ups) {
      await nflbApply(ctx, r, ups);
      await acceptLocal(ctx, r, ups, true);
    },
  },
  {
    name: "nflb-svm",
    label: "nflb, src_valid_mark=1 on uplinks",
    async install(ctx, r, ups) {
      await nflbApply(ctx, r, ups);
      await sysctlUplinks(ctx, r, ups, "src_valid_mark=1");
    },
  },
  {
    name: "nflb-nofrom",
    label: "nflb without the from/guard rules",
    async install(ctx, r, ups) {
      await nflbApply(ctx, r, ups);
      await dropRules(ctx, r, (o) => o >= 500 && o < 900);
    },
  },
];
