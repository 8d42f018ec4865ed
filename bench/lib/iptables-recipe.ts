// The seeds' hand-written recipe (seed 001 / 004), for N uplinks, as iptables-restore input and
// `ip -batch` lines: CONNMARK restore, a cascade of `statistic --mode nth` rules that each take
// an equal share of what is left, CONNMARK save, one fwmark rule + table per link, one
// MASQUERADE per link. The mark match comes before the statistic match (seed 001's order), so
// each rule's nth counter only counts unmarked, i.e. new, connections.
import type { BenchUplink } from "./uplink-topology.ts";

const MARK_BASE = 1;
const TABLE_BASE = 100;
const RULE_PRIORITY_BASE = 1000;

export function iptablesRestoreInput(uplinks: readonly BenchUplink[], lanIf: string): string {
  const n = uplinks.length;
  const mangle = [
    "*mangle",
    ":PREROUTING ACCEPT [0:0]",
    `-A PREROUTING -i ${lanIf} -j CONNMARK --restore-mark`,
    // Rule k sees what rules 0..k-1 did not take: every (n-k)th of it gives each link 1/n.
    ...uplinks.map(
      (u, k) =>
        `-A PREROUTING -i ${lanIf} -m mark --mark 0x0 -m statistic --mode nth --every ${n - k} --packet 0 -j MARK --set-mark ${MARK_BASE + k}`,
    ),
    `-A PREROUTING -i ${lanIf} -m mark ! --mark 0x0 -j CONNMARK --save-mark`,
    "COMMIT",
  ];
  const nat = [
    "*nat",
    ":POSTROUTING ACCEPT [0:0]",
    ...uplinks.map((u) => `-A POSTROUTING -o ${u.iface} -j MASQUERADE`),
    "COMMIT",
  ];
  return [...mangle, ...nat].join("\n") + "\n";
}

/** The mark (and so the fwmark rule) of link k. */
export const recipeMark = (k: number): number => MARK_BASE + k;

export function recipeRoutingUp(uplinks: readonly BenchUplink[]): string[] {
  return uplinks.flatMap((u, k) => [
    `route add default via ${u.gateway} dev ${u.iface} table ${TABLE_BASE + k}`,
    `rule add fwmark ${MARK_BASE + k} table ${TABLE_BASE + k} priority ${RULE_PRIORITY_BASE + k}`,
  ]);
}
