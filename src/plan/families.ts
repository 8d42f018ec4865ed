import { carries } from "./uplinks.ts";
import type { PlannedUplink } from "./types.ts";

/** Why a planned uplink cannot carry a family now, or null when it can (its health aside). */
export function familyProblem(u: PlannedUplink, fam: 4 | 6): string | null {
  if (carries(u, fam)) return null;
  if (u.absent) return `interface ${u.iface} not present`;
  const auto = fam === 4 ? u.gwReason4 : u.gwReason6;
  if (auto) return auto;
  if (!u.addresses.some((a) => a.family === fam)) return `no IPv${fam} address on ${u.iface}`;
  return `no IPv${fam} gateway configured for ${u.iface}`;
}
