import { formatNftDuration } from "../config/duration.ts";
import type { NftObject } from "../nft/model.ts";
import { backendChain, persistGoMap, persistMap } from "../nft/names.ts";
import { kv, map } from "../nft/objects.ts";
import type { PlannedBackend, PlannedService } from "./services.ts";

/**
 * `persistence: 5m` in nft (IPVS's persistence_timeout): a dynamic map per service remembers each
 * client's backend, and a new connection looks it up before the scheduler, whatever that is.
 *
 *   svc_NAME:    meta priority none meta priority set <client> map @persist meta priority vmap @persist_go
 *                meta priority fffe:0-fffe:ffff meta priority set none delete @persist { <client> : … }
 *                <the scheduler's rule>
 *   svc_NAME_bK: meta priority fffe:0-fffe:ffff meta priority set none
 *                update @persist { <client> timeout 5m : fffe:K }
 *                counter, dnat
 *
 * Why `meta priority`: nft 1.0.6 cannot feed a map lookup's value into a verdict map, and a
 * dynamic set cannot hold verdicts; the packet needs one scratch word between the two lookups.
 * The conntrack and packet marks carry uplink pins and other tools' bits; skb->priority of a
 * connection's first packet is 0 (`none`) unless a socket or VLAN set it. nflb borrows it only
 * when it is 0, writes values in a major nobody allocates (0xfffe), and sets it back to 0 before
 * the packet leaves the chain, whichever way it leaves. (IPv4 forwarding overwrites it anyway.)
 *
 * Per new connection this is two hash lookups and one update: O(1) whatever the number of clients
 * and backends. Only backends that are up (and in the pool: regulars, or backups while no regular
 * is up) are in `persist_go`: a client remembered on a backend
 * that is down, drained or in maint is balanced again, and its stale entry is deleted in the same
 * packet, so the backend it now gets is the one remembered (`update` never overwrites a value).
 * The timeout restarts with every new connection of the client.
 *
 * IPv6 clients are keyed by their /64: privacy addresses rotate inside it, and a host keeps one.
 */
const MAJOR = "fffe";
const MINE = `${MAJOR}:0-${MAJOR}:ffff`;
const KEY = { 4: "ip saddr", 6: "ip6 saddr and ffff:ffff:ffff:ffff::" } as const;
const TYPE = { 4: "ip saddr : meta priority", 6: "ip6 saddr : meta priority" } as const;
/** Clients remembered per service at most; beyond it new clients are balanced without memory. */
export const PERSIST_SIZE = 262_144;

export const persistValue = (index: number) => `${MAJOR}:${index.toString(16)}`;

export interface Persistence {
  objects: NftObject[];
  /** Rules ahead of the scheduler's in `svc_NAME`. */
  serviceRules: string[];
  /** Rules ahead of the DNAT in `svc_NAME_bK`. */
  backendRules(b: PlannedBackend): string[];
}

export function persistence(s: PlannedService): Persistence | null {
  if (s.persistenceMs === undefined) return null;
  const name = persistMap(s.name, persistTag(s));
  const go = persistGoMap(s.name);
  const key = KEY[s.family];
  const timeout = formatNftDuration(s.persistenceMs);
  // Up and in the pool: a client remembered on a backup goes back to a regular that returned.
  const live = s.backends.filter((b) => b.state === "up" && (b.backup === true) === (s.onBackups === true));
  return {
    objects: [
      map(name, TYPE[s.family], [], {
        flags: ["dynamic", "timeout"],
        size: PERSIST_SIZE,
        owner: "packet",
      }),
      map(
        go,
        "meta priority : verdict",
        live.map((b) => kv(persistValue(b.index), `goto ${backendChain(s.name, b.index)}`)),
      ),
    ],
    serviceRules: [
      `meta priority none meta priority set ${key} map @${name} meta priority vmap @${go}`,
      `meta priority ${MINE} meta priority set none delete @${name} { ${key} : ${persistValue(0)} }`,
    ],
    // Separate rules: a full map fails the update, and must not fail the DNAT with it.
    backendRules: (b) => [
      `meta priority ${MINE} meta priority set none`,
      `update @${name} { ${key} timeout ${timeout} : ${persistValue(b.index)} }`,
    ],
  };
}

/** The family and the backend list: what a remembered index means. */
function persistTag(s: PlannedService): string {
  let h = 0x811c9dc5;
  for (const ch of `${s.family}|${s.backends.map((b) => b.key).join(",")}`)
    h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}
