import type { Config } from "./schema.ts";
import type { ConfigIssue } from "./issues.ts";
import type { Facts } from "../net/facts.ts";

/** Checks against the machine the config is applied on (`check --offline` skips them). */
export function systemCheck(c: Config, facts: Facts): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const missing = (iface: string) => !facts.interfaces.has(iface);
  for (const [n, u] of Object.entries(c.uplinks ?? {})) {
    if (missing(u.interface))
      out.push({ path: ["uplinks", n, "interface"], message: `no interface ${u.interface} on this host` });
    else if (u.nat === "snat" && (facts.interfaces.get(u.interface)?.addresses.length ?? 0) === 0) {
      out.push({
        path: ["uplinks", n, "nat"],
        message: `snat needs an address on ${u.interface}, which has none`,
      });
    }
  }
  c.balance.from?.forEach((f, i) => {
    if (missing(f)) out.push({ path: ["balance", "from", i], message: `no interface ${f} on this host` });
  });
  if (c.cluster && missing(c.cluster.interface)) {
    out.push({ path: ["cluster", "interface"], message: `no interface ${c.cluster.interface} on this host` });
  }
  return out;
}
