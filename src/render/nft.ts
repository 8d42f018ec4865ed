import { chainBlock, FAMILY, TABLE } from "./nft-text.ts";
import type { NftSection } from "./nft-uplinks.ts";

export const TABLE_REF = `${FAMILY} ${TABLE}`;

/**
 * Base chains nflb hooks, and why at that priority (see docs/DATAPLANE.md):
 * - prerouting, filter @ mangle (-150): after conntrack (-200) so ct state/mark are known, before the
 *   routing decision so the packet mark can steer policy routing, before DNAT (-100).
 * - output, route @ mangle (-150): a mark set here makes the kernel re-route locally generated packets.
 * - postrouting, nat @ srcnat (100): per-uplink NAT, seen once per connection.
 * - services add nat chains at dstnat (-100) in prerouting and output.
 */
const BASE = {
  prerouting: "type filter hook prerouting priority mangle; policy accept;",
  output: "type route hook output priority mangle; policy accept;",
  postrouting_nat: "type nat hook postrouting priority srcnat; policy accept;",
  prerouting_dnat: "type nat hook prerouting priority dstnat; policy accept;",
  // nft 1.0.6 knows the name `dstnat` only in prerouting; -100 is its value.
  output_dnat: "type nat hook output priority -100; policy accept;",
  input_filter: "type filter hook input priority filter; policy accept;",
} as const;

export interface TableSections {
  sections: NftSection[];
  dnat?: { prerouting: string[]; output: string[] };
  input?: string[];
  comment?: string;
}

/** The whole table; preceded by add+delete so that one `nft -f` replaces it atomically whether or not it exists. */
export function renderTable(t: TableSections): string {
  const lines = [`add table ${TABLE_REF}`, `delete table ${TABLE_REF}`, `table ${TABLE_REF} {`];
  if (t.comment) lines.push(`\tcomment ${JSON.stringify(t.comment)}`);
  for (const s of t.sections) lines.push(...s.body);
  const pre = t.sections.flatMap((s) => s.prerouting);
  const out = t.sections.flatMap((s) => s.output);
  const nat = t.sections.flatMap((s) => s.postroutingNat);
  if (pre.length) lines.push(...chainBlock("prerouting", pre, BASE.prerouting));
  if (out.length) lines.push(...chainBlock("output", out, BASE.output));
  if (t.dnat?.prerouting.length)
    lines.push(...chainBlock("prerouting_dnat", t.dnat.prerouting, BASE.prerouting_dnat));
  if (t.dnat?.output.length) lines.push(...chainBlock("output_dnat", t.dnat.output, BASE.output_dnat));
  if (nat.length) lines.push(...chainBlock("postrouting_nat", nat, BASE.postrouting_nat));
  if (t.input?.length) lines.push(...chainBlock("input_filter", t.input, BASE.input_filter));
  lines.push("}");
  return lines.join("\n") + "\n";
}
