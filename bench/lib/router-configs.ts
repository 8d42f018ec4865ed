// The router configurations the packet-path bench compares. Each gets its own router namespace
// (side by side, see uplink-topology.ts) and is installed once; tearing the namespace down
// removes it.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BenchNet } from "./bench-net.ts";
import { iptablesRestoreInput, recipeMark, recipeRoutingUp } from "./iptables-recipe.ts";
import { NFLB_BIN } from "./paths.ts";
import { benchConfigYaml } from "./uplink-config.ts";
import { ROUTER_LAN_IF, type BenchRouter } from "./uplink-topology.ts";

export type ConfigKind = "plain" | "masq1" | "nflb" | "numgen" | "iptables";

export interface RouterConfigSpec {
  kind: ConfigKind;
  /** Uplinks the configuration balances over (1 for the single-path references). */
  uplinks: number;
}

export const CONFIG_LABELS: Record<ConfigKind, (n: number) => string> = {
  plain: () => "plain forwarding (one default route, no nft, no conntrack)",
  masq1: () => "one link, nft masquerade (conntrack + NAT, no balancing)",
  nflb: (n) => `nflb, ${n} uplinks (random, masquerade)`,
  numgen: (n) => `bare numgen map, ${n} uplinks (ct mark map, fwmark rules, masquerade)`,
  iptables: (n) => `iptables nth recipe, ${n} uplinks`,
};

/** Namespace role of a configuration's router, e.g. `nflb8`. */
export function routerRole(c: RouterConfigSpec): string {
  return c.kind === "plain" || c.kind === "masq1"
    ? c.kind
    : `${c.kind === "iptables" ? "ipt" : c.kind === "numgen" ? "ng" : "nflb"}${c.uplinks}`;
}

export interface InstallContext {
  net: BenchNet;
  /** Where nflb's config files go. */
  dir: string;
  /** Environment for nflb (its state directory). */
  env: NodeJS.ProcessEnv;
}

async function routerRun(
  ctx: InstallContext,
  r: BenchRouter,
  argv: readonly string[],
  input?: string,
): Promise<void> {
  const res = await ctx.net.exec(r.role, argv, {
    env: ctx.env,
    timeoutMs: 120_000,
    ...(input === undefined ? {} : { input }),
  });
  if (res.code !== 0)
    throw new Error(`${r.role}: ${argv.join(" ")} exited ${res.code}: ${res.stderr.trim().slice(-2000)}`);
}

/** Install configuration `c` on router `r` (fresh namespace: nothing to remove first). */
export async function installConfig(ctx: InstallContext, c: RouterConfigSpec, r: BenchRouter): Promise<void> {
  if (r.uplinks.length < c.uplinks) throw new Error(`${r.role}: needs ${c.uplinks} uplinks`);
  const uplinks = r.uplinks.slice(0, c.uplinks);
  switch (c.kind) {
    case "plain":
      return;
    case "masq1": {
      // Conntrack + NAT on one link and nothing else: separates their cost from the balancing's.
      const script = [
        "table ip benchref {",
        "\tchain post {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        `\t\toifname "${uplinks[0]?.iface}" masquerade`,
        "\t}",
        "}",
      ];
      return routerRun(ctx, r, ["nft", "-f", "-"], script.join("\n") + "\n");
    }
    case "nflb": {
      const file = join(ctx.dir, `${r.role}.yaml`);
      await writeFile(file, benchConfigYaml({ uplinks, method: "random", balanceFrom: true }));
      return routerRun(ctx, r, [NFLB_BIN, "apply", "-c", file]);
    }
    case "numgen": {
      // The design nflb's uplink balancing is measured against: a new connection's mark from one
      // `numgen` map lookup, kept in the conntrack mark, fwmark rules to a table per link, one
      // masquerade; nothing else (no health, no stickiness, no rule prefixes, no counters).
      const map = uplinks.map((_, k) => `${k} : ${recipeMark(k)}`).join(", ");
      const script = [
        "table ip benchng {",
        "\tchain pre {",
        "\t\ttype filter hook prerouting priority mangle; policy accept;",
        `\t\tiifname "${ROUTER_LAN_IF}" ct state new ct mark set numgen random mod ${uplinks.length} map { ${map} }`,
        `\t\tiifname "${ROUTER_LAN_IF}" meta mark set ct mark`,
        "\t}",
        "\tchain post {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        `\t\toifname { ${uplinks.map((u) => `"${u.iface}"`).join(", ")} } masquerade`,
        "\t}",
        "}",
      ];
      await routerRun(ctx, r, ["nft", "-f", "-"], script.join("\n") + "\n");
      await ctx.net.ipBatch(r.role, recipeRoutingUp(uplinks));
      return;
    }
    case "iptables":
      await routerRun(ctx, r, ["iptables-restore"], iptablesRestoreInput(uplinks, ROUTER_LAN_IF));
      await ctx.net.ipBatch(r.role, recipeRoutingUp(uplinks));
      return;
  }
}
