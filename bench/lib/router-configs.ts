// The router configurations the packet-path bench compares. Each gets its own router namespace
// (side by side, see uplink-topology.ts) and is installed once; tearing the namespace down
// removes it.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BenchNet } from "./bench-net.ts";
import { iptablesRestoreInput, recipeMark, recipeRoutingUp } from "./iptables-recipe.ts";
import { NFLB_BIN } from "./paths.ts";
import { benchConfigYaml } from "./uplink-config.ts";
import { ROUTER_LAN_IF, type BenchRouter, type BenchUplink } from "./uplink-topology.ts";

export type ConfigKind = "plain" | "masq1" | "masqrules" | "ecmp" | "nflb" | "numgen" | "iptables";

export interface RouterConfigSpec {
  kind: ConfigKind;
  /** Uplinks the configuration balances over (1 for the single-path references). */
  uplinks: number;
}

export const CONFIG_LABELS: Record<ConfigKind, (n: number) => string> = {
  plain: () => "plain forwarding (one default route, no nft, no conntrack)",
  masq1: () => "one link, nft masquerade (conntrack + NAT, no balancing)",
  masqrules: (n) => `one-link masquerade + the bare design's ${n} fwmark rules and tables (no marks set)`,
  ecmp: (n) =>
    `multipath default route over ${n} links, L4 hash, masquerade (no marks, no rules, no pinning)`,
  nflb: (n) => `nflb, ${n} uplinks (random, masquerade)`,
  numgen: (n) => `bare numgen map, ${n} uplinks (ct mark map, fwmark rules, masquerade)`,
  iptables: (n) => `iptables nth recipe, ${n} uplinks`,
};

/** How many uplinks the configuration's traffic leaves by (masqrules has N rules but uses one link). */
export function linksCarrying(c: RouterConfigSpec): number {
  return c.kind === "masqrules" ? 1 : c.uplinks;
}

/** Namespace role of a configuration's router, e.g. `nflb8`. */
export function routerRole(c: RouterConfigSpec): string {
  const short: Record<ConfigKind, string> = {
    plain: "plain",
    masq1: "masq1",
    masqrules: "mqr",
    ecmp: "ecmp",
    nflb: "nflb",
    numgen: "ng",
    iptables: "ipt",
  };
  return c.kind === "plain" || c.kind === "masq1" ? c.kind : `${short[c.kind]}${c.uplinks}`;
}

export interface InstallContext {
  net: BenchNet;
  /** Where nflb's config files go. */
  dir: string;
  /** Environment for nflb (its state directory). */
  env: NodeJS.ProcessEnv;
}

/** Run argv in router r's namespace (nflb's state directory in ctx.env); stdout, or an error. */
export async function routerRun(
  ctx: InstallContext,
  r: BenchRouter,
  argv: readonly string[],
  input?: string,
): Promise<string> {
  const res = await ctx.net.exec(r.role, argv, {
    env: ctx.env,
    timeoutMs: 120_000,
    ...(input === undefined ? {} : { input }),
  });
  if (res.code !== 0)
    throw new Error(`${r.role}: ${argv.join(" ")} exited ${res.code}: ${res.stderr.trim().slice(-2000)}`);
  return res.stdout;
}

/**
 * The bare design's nft table: a new connection's mark from one `numgen` map lookup, kept in the
 * conntrack mark, copied to the packet mark on the LAN side, one masquerade. `mark(k)` is link k's
 * mark, so the same table can run on the bare design's routing or on nflb's.
 */
export function bareNumgenScript(uplinks: readonly BenchUplink[], mark: (k: number) => number): string {
  const map = uplinks.map((_, k) => `${k} : 0x${mark(k).toString(16)}`).join(", ");
  return [
    "table ip benchng {",
    "\tchain pre {",
    "\t\ttype filter hook prerouting priority mangle; policy accept;",
    `\t\tiifname "${ROUTER_LAN_IF}" ct state new ct mark set numgen random mod ${uplinks.length} map { ${map} }`,
    `\t\tiifname "${ROUTER_LAN_IF}" meta mark set ct mark`,
    "\t}",
    ...masqueradeChain(uplinks),
    "}",
    "",
  ].join("\n");
}

/** One masquerade rule for the given links, as a table of its own. */
function masqueradeScript(uplinks: readonly BenchUplink[]): string {
  return ["table ip benchref {", ...masqueradeChain(uplinks), "}", ""].join("\n");
}

/** A postrouting chain that masquerades what leaves by any of the given links. */
function masqueradeChain(uplinks: readonly BenchUplink[]): string[] {
  return [
    "\tchain post {",
    "\t\ttype nat hook postrouting priority srcnat; policy accept;",
    `\t\toifname { ${uplinks.map((u) => `"${u.iface}"`).join(", ")} } masquerade`,
    "\t}",
  ];
}

/** `nflb apply` of the bench config (random, masquerade, balance.from the LAN) plus `extra` YAML. */
export async function nflbApply(
  ctx: InstallContext,
  r: BenchRouter,
  uplinks: readonly BenchUplink[],
  extra = "",
): Promise<void> {
  const file = join(ctx.dir, `${r.role}.yaml`);
  await writeFile(file, benchConfigYaml({ uplinks, method: "random", balanceFrom: true }) + extra);
  await routerRun(ctx, r, [NFLB_BIN, "apply", "-c", file]);
}

/** Install configuration `c` on router `r` (fresh namespace: nothing to remove first). */
export async function installConfig(ctx: InstallContext, c: RouterConfigSpec, r: BenchRouter): Promise<void> {
  if (r.uplinks.length < c.uplinks) throw new Error(`${r.role}: needs ${c.uplinks} uplinks`);
  const uplinks = r.uplinks.slice(0, c.uplinks);
  switch (c.kind) {
    case "plain":
      return;
    case "masq1":
    case "masqrules": {
      // Conntrack + NAT on one link and nothing else: separates their cost from the balancing's.
      // masqrules adds the bare design's policy routing, never used (no packet is marked): what
      // having N fwmark rules costs by itself (every lookup walks them; the reverse-path check of
      // every forwarded packet becomes a full lookup once any rule exists).
      const script = [
        "table ip benchref {",
        "\tchain post {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        `\t\toifname "${uplinks[0]?.iface}" masquerade`,
        "\t}",
        "}",
      ];
      await routerRun(ctx, r, ["nft", "-f", "-"], script.join("\n") + "\n");
      if (c.kind === "masqrules") await ctx.net.ipBatch(r.role, recipeRoutingUp(uplinks));
      return;
    }
    case "ecmp":
      // The cheapest multi-link design there is: one multipath route, a flow's link chosen by the
      // FIB's hash of its 5-tuple, no mark, no policy rule. It cannot pin a connection (a change of
      // nexthops moves flows), so it is a floor, not an alternative.
      await ctx.net.sysctl(r.role, { "net.ipv4.fib_multipath_hash_policy": 1 });
      await routerRun(ctx, r, ["nft", "-f", "-"], masqueradeScript(uplinks));
      await ctx.net.ipBatch(r.role, [
        `route replace default ${uplinks.map((u) => `nexthop via ${u.gateway} dev ${u.iface}`).join(" ")}`,
      ]);
      return;
    case "nflb":
      return nflbApply(ctx, r, uplinks);
    case "numgen":
      // The design nflb's uplink balancing is measured against: a new connection's mark from one
      // `numgen` map lookup, kept in the conntrack mark, fwmark rules to a table per link, one
      // masquerade; nothing else (no health, no stickiness, no rule prefixes, no counters).
      await routerRun(ctx, r, ["nft", "-f", "-"], bareNumgenScript(uplinks, recipeMark));
      await ctx.net.ipBatch(r.role, recipeRoutingUp(uplinks));
      return;
    case "iptables":
      await routerRun(ctx, r, ["iptables-restore"], iptablesRestoreInput(uplinks, ROUTER_LAN_IF));
      await ctx.net.ipBatch(r.role, recipeRoutingUp(uplinks));
      return;
  }
}
