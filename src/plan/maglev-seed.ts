import type { Config } from "../config/schema.ts";
import { groupSlotsMap, slotsMap } from "../nft/names.ts";
import { parseHostPort } from "../net/ip.ts";
import { maglevSize } from "./maglev.ts";
import { groupOf } from "./nft-groups.ts";
import type { PlannedService, ServicesPlan } from "./services.ts";

/**
 * A cold plan (the daemon's first, or `nflb apply`) of maglev services dealt from the slots the
 * kernel holds, so that restarting with the same config moves no client. Without it, a table that
 * had been dealt incrementally (config edits, src/plan/maglev.ts) is populated afresh, which
 * moves a few percent of clients for no reason.
 *
 * The live slots stand in for each service's configured table of its regular backends (the
 * planner's `previous`): when every regular backend was up they are that table; otherwise the
 * dealing from them still keeps every slot whose backend stays. A service whose live table does not
 * fit (another size, a slot of a backup or of a backend no longer configured, missing slots) gets
 * no seed and is populated as before. Pure: `listing` is `nft list table` (or `list map`) text.
 */
export function maglevSeed(c: Config, listing: string): ServicesPlan | null {
  const maps = new Map<string, Map<string, string>>();
  const mapOf = (name: string) => {
    let m = maps.get(name);
    if (!m) maps.set(name, (m = parseMap(listing, name)));
    return m;
  };
  const services: PlannedService[] = [];
  for (const [name, s] of Object.entries(c.services ?? {})) {
    if (s.scheduler !== "maglev" || s.persistence !== undefined) continue;
    const listen = parseHostPort(s.listen);
    if ("error" in listen) continue;
    const owner = new Map<string, string>();
    for (const b of s.backends) {
      const hp = parseHostPort(b.address);
      if (b.backup !== true && !("error" in hp)) owner.set(`${hp.addr.text} . ${hp.port}`, b.address);
    }
    if (owner.size === 0) continue;
    const size = maglevSize(owner.size);
    const family = listen.addr.family;
    // Its group's map, keyed VIP . port . slot; or, from a table an older nflb wrote, its own.
    const grouped = mapOf(groupSlotsMap(family, s.protocol, groupOf(name)));
    const prefix = `${listen.addr.text} . ${listen.port} . `;
    const own = grouped.has(`${prefix}0`) ? null : mapOf(slotsMap(name));
    const at = (i: number) => (own ? own.get(`${i}`) : grouped.get(`${prefix}${i}`));
    const live: string[] = [];
    for (let i = 0; i < size; i++) {
      const key = owner.get(at(i) ?? "");
      if (key === undefined) break;
      live.push(key);
    }
    if (live.length !== size || at(size) !== undefined) continue;
    // Only `name` and `maglev` of a previous plan are read (planServices → maglevPools).
    services.push({
      name,
      family,
      vip: listen.addr,
      port: listen.port,
      protocol: s.protocol,
      scheduler: s.scheduler,
      snat: s.snat,
      backends: [],
      slots: [],
      hashSeed: 0,
      maglev: { regular: live, backup: [] },
    });
  }
  return services.length ? { services, hairpinIfaces: [] } : null;
}

/** The `KEY : VALUE` elements of map `name` in an nft listing (empty when it is not there). */
export function parseMap(listing: string, name: string): Map<string, string> {
  const out = new Map<string, string>();
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const head = new RegExp(`^\\s*map ${escaped} \\{\\s*$`, "m").exec(listing);
  if (!head) return out;
  const rest = listing.slice(head.index + head[0].length);
  const end = rest.search(/^\s*\}\s*$/m);
  const body = end < 0 ? rest : rest.slice(0, end);
  const at = body.indexOf("elements = {");
  if (at < 0) return out;
  const close = body.indexOf("}", at);
  const list = body.slice(at + "elements = {".length, close < 0 ? undefined : close);
  for (const item of list.split(",")) {
    const colon = item.lastIndexOf(" : ");
    if (colon < 0) continue;
    out.set(item.slice(0, colon).trim(), item.slice(colon + 3).trim());
  }
  return out;
}
