import type { Config } from "./schema.ts";
import type { ConfigIssue } from "./issues.ts";
import { FROM_RULE_SLOTS } from "./owned-ranges.ts";
import type { Facts } from "../net/facts.ts";

/** Checks against the machine the config is applied on (`check --offline` skips them). */
export function systemCheck(c: Config, facts: Facts): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const missing = (iface: string) => !facts.interfaces.has(iface);
  const absent = (iface: string) =>
    `no interface ${iface} on this host: check the name (ip link), or bring it up first`;
  // An uplink's interface may come later (a tunnel, PPP, a DHCP lease): systemWarnings says so.
  c.balance.from?.forEach((f, i) => {
    if (missing(f)) out.push({ path: ["balance", "from", i], message: absent(f) });
  });
  if (c.cluster && missing(c.cluster.interface)) {
    out.push({ path: ["cluster", "interface"], message: absent(c.cluster.interface) });
  }
  out.push(...fromRuleRoom(c, facts));
  return out;
}

/**
 * Each address on an uplink gets one `from ADDRESS` rule and one guard rule, FROM_RULE_SLOTS
 * apart per family: more addresses than that would overlap the guards and leave nflb's range.
 */
function fromRuleRoom(c: Config, facts: Facts): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const fam of [4, 6] as const) {
    let count = 0;
    for (const [n, u] of Object.entries(c.uplinks ?? {})) {
      const here = facts.interfaces.get(u.interface)?.addresses.filter((a) => a.family === fam).length ?? 0;
      count += here;
      if (count > FROM_RULE_SLOTS) {
        out.push({
          path: ["uplinks", n, "interface"],
          message: `the uplinks' interfaces carry more than ${FROM_RULE_SLOTS} IPv${fam} addresses (${u.interface} has ${here}); nflb's rule priorities have room for ${FROM_RULE_SLOTS}: remove addresses (ip addr del) or turn off IPv6 privacy addresses on it`,
        });
        break;
      }
    }
  }
  return out;
}
