// nflb configs for the bench topology, written as YAML text exactly as a user would.
import { ROUTER_LAN_IF, type BenchUplink } from "./uplink-topology.ts";

/**
 * `count` destination prefixes inside the documentation/benchmark ranges, no two adjacent (so
 * nft's auto-merge cannot fold them into a few ranges): every other /24 of 198.18.0.0/15, then
 * every other /25 of 100.65.0.0–100.127.255.255 (100.64.0.0/16 holds the bench's uplinks).
 */
export function rulePrefixes(count: number): string[] {
  const out: string[] = [];
  for (let k = 0; k < 512 && out.length < count; k += 2) out.push(`198.${18 + (k >> 8)}.${k & 255}.0/24`);
  // /25 number n inside 100.64.0.0/10, starting at 100.65.0.0.
  for (let n = 512; out.length < count; n += 2) {
    const second = 64 + (n >> 9);
    if (second > 127) throw new Error(`rulePrefixes: ${count} is more than the ranges hold`);
    out.push(`100.${second}.${(n >> 1) & 255}.${(n & 1) * 128}/25`);
  }
  return out;
}

export interface BenchConfigOptions {
  uplinks: readonly BenchUplink[];
  method?: "random" | "round-robin" | "source-hash" | "source-dest-hash";
  /** Rules with this many destination prefixes each (all drawn from rulePrefixes, disjoint). */
  rules?: { count: number; prefixesPerRule: number };
  /** Restrict balancing to the LAN interface (the packet-path bench has one). */
  balanceFrom?: boolean;
}

export function uplinkName(u: BenchUplink): string {
  return `isp${u.index}`;
}

export function benchConfigYaml(o: BenchConfigOptions): string {
  const lines = ["version: 1", "uplinks:"];
  for (const u of o.uplinks) {
    lines.push(
      `  ${uplinkName(u)}:`,
      `    interface: ${u.iface}`,
      `    gateway: ${u.gateway}`,
      "    weight: 1",
      "    nat: masquerade",
    );
  }
  lines.push("balance:", `  method: ${o.method ?? "random"}`);
  if (o.balanceFrom) lines.push(`  from: [${ROUTER_LAN_IF}]`);
  const rules = o.rules ?? { count: 0, prefixesPerRule: 0 };
  if (rules.count > 0) {
    const all = rulePrefixes(rules.count * rules.prefixesPerRule);
    lines.push("rules:");
    for (let r = 0; r < rules.count; r++) {
      const a = o.uplinks[r % o.uplinks.length];
      const b = o.uplinks[(r + 1) % o.uplinks.length];
      if (!a || !b) throw new Error("benchConfigYaml: rules need at least one uplink");
      lines.push(`  - name: bench-${r}`, `    via: [${uplinkName(a)}, ${uplinkName(b)}]`, "    destination:");
      for (const p of all.slice(r * rules.prefixesPerRule, (r + 1) * rules.prefixesPerRule))
        lines.push(`      - ${p}`);
    }
  }
  return lines.join("\n") + "\n";
}
