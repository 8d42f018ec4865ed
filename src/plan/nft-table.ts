import type { BaseChainSpec, NftObject, NftTable } from "../nft/model.ts";
import { chain } from "../nft/objects.ts";
import { BASE_CHAINS, FAMILY, TABLE } from "../nft/names.ts";

/** One part of the table (uplinks, services, cluster…): its objects and its rules in the shared base chains. */
export interface NftSection {
  objects: NftObject[];
  prerouting: string[];
  output: string[];
  postroutingNat: string[];
  /** Rules ahead of every section's `postroutingNat` (counting, before any NAT verdict ends the chain). */
  postroutingNatFirst?: string[];
}

/**
 * Base chains nflb hooks, and why at that priority (see docs/DATAPLANE.md):
 * - prerouting, filter @ mangle (-150): after conntrack (-200) so ct state/mark are known, before the
 *   routing decision so the packet mark can steer policy routing, before DNAT (-100).
 * - output, route @ mangle (-150): a mark set here makes the kernel re-route locally generated packets.
 * - postrouting, nat @ srcnat (100): per-uplink NAT, seen once per connection.
 * - services add nat chains at dstnat (-100) in prerouting and output.
 */
export const BASE: Record<
  "prerouting" | "output" | "postrouting_nat" | "prerouting_dnat" | "output_dnat" | "input_filter",
  BaseChainSpec
> = {
  prerouting: { type: "filter", hook: "prerouting", priority: "mangle", policy: "accept" },
  output: { type: "route", hook: "output", priority: "mangle", policy: "accept" },
  postrouting_nat: { type: "nat", hook: "postrouting", priority: "srcnat", policy: "accept" },
  prerouting_dnat: { type: "nat", hook: "prerouting", priority: "dstnat", policy: "accept" },
  // nft 1.0.6 knows the name `dstnat` only in prerouting; -100 is its value.
  output_dnat: { type: "nat", hook: "output", priority: "-100", policy: "accept" },
  input_filter: { type: "filter", hook: "input", priority: "filter", policy: "accept" },
};

export interface TableParts {
  sections: NftSection[];
  dnat?: { prerouting: string[]; output: string[] };
  input?: string[];
  comment?: string;
}

/** The `inet nflb` table: every section's objects, then the shared base chains that hold their rules. */
export function buildTable(t: TableParts): NftTable {
  // concat, never a push per object: 5,000 services are 15,000 objects, planned again per change.
  const objects: NftObject[] = ([] as NftObject[]).concat(...t.sections.map((s) => s.objects));
  const pre = t.sections.flatMap((s) => s.prerouting);
  const out = t.sections.flatMap((s) => s.output);
  const nat = [
    ...t.sections.flatMap((s) => s.postroutingNatFirst ?? []),
    ...t.sections.flatMap((s) => s.postroutingNat),
  ];
  if (pre.length) objects.push(chain(BASE_CHAINS.prerouting, pre, BASE.prerouting));
  if (out.length) objects.push(chain(BASE_CHAINS.output, out, BASE.output));
  if (t.dnat?.prerouting.length)
    objects.push(chain(BASE_CHAINS.prerouting_dnat, t.dnat.prerouting, BASE.prerouting_dnat));
  if (t.dnat?.output.length) objects.push(chain(BASE_CHAINS.output_dnat, t.dnat.output, BASE.output_dnat));
  if (nat.length) objects.push(chain(BASE_CHAINS.postrouting_nat, nat, BASE.postrouting_nat));
  if (t.input?.length) objects.push(chain(BASE_CHAINS.input_filter, t.input, BASE.input_filter));
  return { family: FAMILY, name: TABLE, ...(t.comment ? { comment: t.comment } : {}), objects };
}
