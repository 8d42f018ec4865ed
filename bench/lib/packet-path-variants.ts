// Router configurations between the bare `numgen` map design and nflb's full ruleset, for
// bench/packet-path-pieces.ts: each variant is nflb (as `nflb apply` installs it) with one piece
// taken away or changed, or the bare design with one of nflb's pieces added, so that interleaved
// measurements say which piece costs what.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { InstallContext } from "./router-configs.ts";
import { installConfig } from "./router-configs.ts";
import { recipeMark } from "./iptables-recipe.ts";
import { benchConfigYaml } from "./uplink-config.ts";
import { NFLB_BIN } from "./paths.ts";
import { ROUTER_LAN_IF, type BenchRouter, type BenchUplink } from "./uplink-topology.ts";

export interface Variant {
  name: string;
  label: string;
  install(ctx: InstallContext, r: BenchRouter, uplinks: readonly BenchUplink[]): Promise<void>;
}

/** nflb's defaults for the bench config (mark_mask 0xff00, table_base 200, rule_priority_base 10000). */
const nflbMark = (k: number) => (k + 1) << 8;
const RULE_BASE = 10000;

async function run(ctx: InstallContext, r: BenchRouter, argv: readonly string[], input?: string) {
  const res = await ctx.net.exec(r.role, argv, {
    env: ctx.env,
    timeoutMs: 120_000,
    ...(input === undefined ? {} : { input }),
  });
  if (res.code !== 0) throw new Error(`${r.role}: ${argv.join(" ")}: ${res.stderr.trim().slice(-1500)}`);
  return res.stdout;
}

async function nflbApply(ctx: InstallContext, r: BenchRouter, uplinks: readonly BenchUplink[], extra = "") {
  const file = join(ctx.dir, `${r.role}.yaml`);
  await writeFile(file, benchConfigYaml({ uplinks, method: "random", balanceFrom: true }) + extra);
  await run(ctx, r, [NFLB_BIN, "apply", "-c", file]);
}

async function sysctlUplinks(
  ctx: InstallContext,
  r: BenchRouter,
  uplinks: readonly BenchUplink[],
  kv: string,
) {
  await run(ctx, r, ["sysctl", "-q", "-w", ...uplinks.map((u) => `net.ipv4.conf.${u.iface}.${kv}`)]);
}

/** Delete nflb's ip rules whose priority (offset from the base) passes `drop`. */
async function dropRules(ctx: InstallContext, r: BenchRouter, drop: (offset: number) => boolean) {
  const rules = JSON.parse(await run(ctx, r, ["ip", "-j", "rule", "show"])) as { priority: number }[];
  const lines = rules
    .filter((x) => x.priority >= RULE_BASE && x.priority < RULE_BASE + 1000 && drop(x.priority - RULE_BASE))
    .map((x) => `rule del priority ${x.priority}`);
  if (lines.length) await ctx.net.ipBatch(r.role, lines);
}

/** The bare design's nft table, with a caller's mark values (so it can run on nflb's routing too). */
function bareScript(uplinks: readonly BenchUplink[], mark: (k: number) => number, extraPre: string[] = []) {
  const map = uplinks.map((_, k) => `${k} : 0x${mark(k).toString(16)}`).join(", ");
  return [
    "table ip benchng {",
    "\tchain pre {",
    "\t\ttype filter hook prerouting priority mangle; policy accept;",
    ...extraPre.map((l) => `\t\t${l}`),
    `\t\tiifname "${ROUTER_LAN_IF}" ct state new ct mark set numgen random mod ${uplinks.length} map { ${map} }`,
    `\t\tiifname "${ROUTER_LAN_IF}" meta mark set ct mark`,
    "\t}",
    "\tchain post {",
    "\t\ttype nat hook postrouting priority srcnat; policy accept;",
    `\t\toifname { ${uplinks.map((u) => `"${u.iface}"`).join(", ")} } masquerade`,
    "\t}",
    "}",
    "",
  ].join("\n");
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
      await run(ctx, r, ["nft", "delete", "table", "inet", "nflb"]);
      await run(ctx, r, ["nft", "-f", "-"], bareScript(ups, nflbMark));
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
      await run(
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
    name: "nflb-rp0",
    label: "nflb, rp_filter=0 on uplinks",
    async install(ctx, r, ups) {
      await nflbApply(ctx, r, ups);
      await sysctlUplinks(ctx, r, ups, "rp_filter=0");
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

/** The bare design's mark for link k, for variants that keep its routing. */
export const bareMark = recipeMark;
