import type { Config } from "./schema.ts";
import { formatIssue, type ConfigIssue } from "./issues.ts";
import type { CheckedConfig, LoadedConfig } from "./load.ts";
import { checkOwnedRanges } from "./owned-ranges.ts";
import { markCollisions } from "./mark-collisions.ts";
import { overflowWarnings } from "./overflow-checks.ts";
import { parseAddr, prefixContains } from "../net/ip.ts";
import { staticGateways } from "../net/gateways.ts";
import type { Facts } from "../net/facts.ts";

// Warnings: the config is valid and nflb runs it, but it probably does not do what the admin
// wants, or it shares something with another tool. `check` prints them and still exits 0.

/** From the config alone. */
export function configWarnings(c: Config): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const uplinks = Object.entries(c.uplinks ?? {});
  if (uplinks.length > 1) {
    for (const [n, u] of uplinks) {
      if (u.probe.targets.length === 0)
        out.push({
          path: ["uplinks", n, "probe", "targets"],
          message:
            "no probe targets: the uplink is only down when its interface is, so it will never fail over on an upstream outage; add targets beyond the ISP, like targets: [198.18.100.1, 198.18.100.2]",
        });
    }
  }
  if (uplinks.length > 0) out.push(...markCollisions(c.mark_mask, configInterfaces(c), "config"));
  if (!c.dns)
    c.rules.forEach((r, i) => {
      if (r.domains)
        out.push({
          path: ["rules", i, "domains"],
          message:
            "no dns section: nothing fills this rule's domain sets; add dns: { listen: [LAN_ADDRESS:53], upstream: [RESOLVER] } and point the LAN's DNS at it",
        });
    });
  if (uplinks.length > 0) out.push(...checkOwnedRanges(c).warnings);
  out.push(...overflowWarnings(c));
  return out;
}

/** Against the host's facts (`check --offline` skips them). */
export function systemWarnings(c: Config, facts: Facts): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const [n, u] of Object.entries(c.uplinks ?? {})) {
    const f = facts.interfaces.get(u.interface);
    if (!f) {
      out.push({
        path: ["uplinks", n, "interface"],
        message: `interface ${u.interface} not present on this host: the uplink stays down until it appears (a tunnel or PPP link that connects later); check the name (ip link) otherwise`,
      });
      continue;
    }
    if (u.nat === "snat" && f.addresses.length === 0)
      out.push({
        path: ["uplinks", n, "nat"],
        message: `snat needs an address on ${u.interface}, which has none now: the uplink stays down until it gets one (DHCP); use nat: masquerade if its address changes`,
      });
    if (!f.subnets?.length) continue;
    staticGateways(u.gateway).forEach((g, i) => {
      const gw = parseAddr(g);
      if (!gw) return;
      // An IPv6 gateway is usually the router's link-local address: on-link by definition.
      if (gw.family === 6 && gw.text.startsWith("fe80:")) return;
      const nets = f.subnets?.filter((p) => p.family === gw.family) ?? [];
      if (nets.length === 0 || nets.some((p) => prefixContains(p, gw))) return;
      out.push({
        path:
          Array.isArray(u.gateway) && u.gateway.length > 1
            ? ["uplinks", n, "gateway", i]
            : ["uplinks", n, "gateway"],
        message: `gateway ${g} is outside ${u.interface}'s subnets (${nets.map((p) => p.text).join(", ")}): the kernel will refuse the route; check the address, or the interface`,
      });
    });
  }
  // Interfaces the config names were looked at already (configWarnings).
  const named = new Set(configInterfaces(c));
  const others = [...facts.interfaces.keys()].filter((i) => !named.has(i));
  if (c.uplinks) out.push(...markCollisions(c.mark_mask, others, "host"));
  return out;
}

function configInterfaces(c: Config): string[] {
  return [
    ...Object.values(c.uplinks ?? {}).map((u) => u.interface),
    ...(c.balance.from ?? []),
    ...(c.cluster ? [c.cluster.interface] : []),
  ];
}

/** Everything `check` warns about, located: the config's own warnings, plus the host's unless offline. */
export function checkWarnings(loaded: LoadedConfig, facts: Facts | null): ConfigIssue[] {
  const own =
    "warnings" in loaded ? (loaded as CheckedConfig).warnings : loaded.locate(configWarnings(loaded.config));
  return [...own, ...(facts ? loaded.locate(systemWarnings(loaded.config, facts)) : [])];
}

export function formatWarning(file: string, w: ConfigIssue): string {
  return `${file}: warning: ${formatIssue(w)}`;
}
