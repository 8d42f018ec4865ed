import type { PlannedService } from "./services.ts";
import { withSegments, type Element, type NftSet } from "../nft/model.ts";
import { map } from "../nft/objects.ts";
import { groupSlotsMap } from "../nft/names.ts";

/**
 * Slot tables shared by groups of services. nft 1.0.6 reads every set declaration of the table
 * back from the kernel before it evaluates any command (cache.c; a persistent `nft -i` does too,
 * after each of its own commits), so a map per service made a one-backend change at 5,000
 * services pay for 5,000 map declarations (40–55 ms of nft CPU). Services of one family and
 * protocol share GROUPS maps instead, keyed VIP . port . slot; each keeps its own chain and rule
 * (its own `numgen inc` counter, its own modulus).
 *
 * A service's group is a hash of its name alone, so adding or removing a service moves no other.
 * Why not one map for all: 250,000 elements in one map with the 5,000 rules bound to it took 160 s
 * to load (bench/RESULTS.md); the load grows with rules × elements per map, so the groups stay
 * small: at 5,000 × 50, ~39 services and ~2,000 slots per map.
 *
 * Services whose slot maps differ in shape keep their own map: `random` (an interval map of slot
 * ranges) and `persistence` (a verdict map). least-conn's walk restarts when its own slots change
 * (its rule names them, nft-services.ts walkTag), not when another member's do.
 */
export const GROUPS = 128;

const IP = { 4: "ip", 6: "ip6" } as const;

export function groupedSlots(s: PlannedService, persistent: boolean): boolean {
  return !persistent && s.scheduler !== "random";
}

/** FNV-1a of the name: stable across runs and versions (a config's groups never move). */
export function groupOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % GROUPS;
}

export function groupMapName(s: PlannedService): string {
  return groupSlotsMap(s.family, s.protocol, groupOf(s.name));
}

/** `typeof` of a group map: the slot part is an integer (numgen and jhash alike, nft accepts both). */
export function groupType(f: 4 | 6, protocol: string): string {
  const ip = IP[f];
  return `${ip} daddr . ${protocol} dport . numgen inc mod 1 : ${ip} daddr . ${protocol} dport`;
}

/** The key prefix of a service's elements in its group map. */
export function groupKeyPrefix(s: PlannedService): string {
  return `${s.vip.text} . ${s.port} . `;
}

/**
 * The group maps of these services' element arrays (one array per service, in the order given):
 * the same map object while no member's array changed, so the diff skips the unchanged groups by
 * identity and compares only the changed one's elements.
 */
const groupMemo = new Map<string, { parts: readonly (readonly Element[])[]; map: NftSet }>();

export function groupMaps(
  members: Map<string, { f: 4 | 6; protocol: string; parts: (readonly Element[])[] }>,
): NftSet[] {
  const out: NftSet[] = [];
  for (const name of [...members.keys()].sort()) {
    const m = members.get(name);
    if (!m) continue;
    const hit = groupMemo.get(name);
    if (hit && sameParts(hit.parts, m.parts)) {
      out.push(hit.map);
      continue;
    }
    const elements: Element[] = [];
    for (const p of m.parts) for (const e of p) elements.push(e);
    const built = withSegments(map(name, groupType(m.f, m.protocol), elements), m.parts);
    groupMemo.set(name, { parts: m.parts, map: built });
    out.push(built);
  }
  return out;
}

function sameParts(a: readonly (readonly Element[])[], b: readonly (readonly Element[])[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
