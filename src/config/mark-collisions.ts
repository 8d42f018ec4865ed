import type { ConfigIssue } from "./issues.ts";
import { hex } from "./marks.ts";

/**
 * Marks other tools put on packets or connections. nflb rewrites the bits of `mark_mask` on
 * every packet of a connection it balances, so a tool whose bits overlap loses its marks (and a
 * WireGuard tunnel whose own packets lose 0xca6c routes them into itself).
 */
interface MarkUser {
  tool: string;
  bits: number;
  /** Interfaces that show the tool is in use. */
  seen: RegExp;
}

export const MARK_USERS: MarkUser[] = [
  {
    tool: "wg-quick (fwmark 0xca6c on the tunnel's own packets when it installs a default route; not with Table = off)",
    bits: 0xca6c,
    seen: /^wg/,
  },
  { tool: "Tailscale (marks under 0xff0000)", bits: 0xff0000, seen: /^tailscale/ },
  {
    tool: "kube-proxy (0x4000 masquerade, 0x8000 drop)",
    bits: 0xc000,
    seen: /^(kube-|cni|flannel|cali|weave)/,
  },
  { tool: "Cilium (marks under 0xf00)", bits: 0x0f00, seen: /^cilium_/ },
];

/** Bits most hand-written rules use (`--set-mark 1`, shorewall's provider marks, mwan3's defaults nearby). */
export const LOW_BYTE = 0xff;

/** A mask that leaves the low byte and the tools above alone on a host that runs them. */
function freeMask(taken: number): number {
  for (const m of [0xff00, 0xff0000, 0xff000000, 0xf0000000]) if ((m & taken) === 0) return m;
  return 0xff000000;
}

export function markCollisions(
  mask: number,
  interfaces: Iterable<string>,
  where: "config" | "host",
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const names = [...interfaces];
  const users = MARK_USERS.filter((u) => (u.bits & mask) !== 0 && names.some((n) => u.seen.test(n)));
  const taken = users.reduce((acc, u) => acc | u.bits, LOW_BYTE);
  for (const u of users) {
    const iface = names.find((n) => u.seen.test(n)) ?? "";
    out.push({
      path: ["mark_mask"],
      message: `mark_mask ${hex(mask)} overlaps bits ${hex(u.bits & mask)} of ${u.tool}, in use by the look of ${iface} ${where === "config" ? "in this config" : "on this host"}: set mark_mask: ${hex(freeMask(taken))}`,
    });
  }
  if (where === "config" && (mask & LOW_BYTE) !== 0) {
    out.push({
      path: ["mark_mask"],
      message: `mark_mask ${hex(mask)} uses the low byte (0xff), where most firewall scripts and tools put their marks: set mark_mask: ${hex(freeMask(taken))}`,
    });
  }
  return out;
}
