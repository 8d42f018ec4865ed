import type { PlannedBackend, PlannedService, ServicesPlan } from "./services.ts";
import { runs } from "./split.ts";
import type { Element, NftObject } from "../nft/model.ts";
import { chain, kv, map, set, typedSet } from "../nft/objects.ts";
import { hex, q } from "../nft/text.ts";
import {
  BASE_CHAINS,
  backendChain,
  backendCounterKey,
  serviceChain,
  slotsMap,
  SVC_BYTES,
  SVC_CONNS,
  SVC_DISPATCH,
  SVC_HAIRPIN,
  SVC_SNAT,
  SVC_VIPS,
} from "../nft/names.ts";
import type { NftSection } from "./nft-table.ts";
import { persistence } from "./nft-persist.ts";
import { groupedSlots, groupKeyPrefix, groupMapName, groupMaps } from "./nft-groups.ts";

/**
 * Services in nft: one lookup per new connection, whatever the number of services and backends,
 * and a table whose chains, rules and named objects grow with the services, never the backends
 * (nft 1.0.6 reads every chain, rule and named object of a table back from the kernel before it
 * evaluates any command on it; elements of maps it does not read).
 *
 *   nat prerouting/output @ dstnat:  daddr . l4proto . dport  vmap @svc_dispatch4|6  → goto svc_NAME
 *   svc_NAME:    dnat to daddr . dport . (numgen inc / jhash saddr  mod N)  map @svc_slots4_tcp_G
 *                (VIP . port . slot → backend address . port, a map shared by the services of
 *                group G: see nft-groups.ts); random and persistent services keep a
 *                map of their own, `dnat to numgen … mod N map @svc_NAME_slots` (slot → backend)
 *   nat postrouting @ srcnat: count the connection in @svc_conns4|6 (first, before any NAT verdict);
 *                masquerade `snat: true` services and hairpin connections
 *
 * With `persistence`, the slots are verdicts instead (`goto svc_NAME_bK`, a chain per backend that
 * remembers the client before its DNAT: see nft-persist.ts).
 *
 * Health, drain and load change only the service's slot elements (in its group's map or its own)
 * and, when the slot count changes, the one rule of `svc_NAME`: the diff (src/nft/diff.ts) sends
 * only those, and only for services that changed.
 *
 * Counters per backend are elements of dynamic sets declared `counter`, keyed by (VIP . proto .
 * port . backend address . backend port): `update @set { key }` from the packet path adds the
 * element on a backend's first packet and bumps its counter on every one. New connections are
 * counted in postrouting's nat chain (it sees a connection's first packet only, after the DNAT);
 * bytes in a forward-hook chain `svc_bytes`, one update per packet and direction.
 * (Connections from the router itself, via the output DNAT chain, are not forwarded and not
 * counted in bytes.)
 */
const COUNT_TYPE = {
  4: "ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service",
  6: "ipv6_addr . inet_proto . inet_service . ipv6_addr . inet_service",
} as const;

/** Every backend's counter key, for `readNflbCounters` → `nflb_backend_connections_total`. */
export function backendCounters(p: ServicesPlan): { service: string; backend: string; counter: string }[] {
  return p.services.flatMap((s) =>
    s.backends.map((b) => ({ service: s.name, backend: b.key, counter: counterKeyOf(s, b) })),
  );
}

export function counterKeyOf(s: PlannedService, b: PlannedBackend): string {
  return backendCounterKey(s.family, s.vip.text, s.protocol, s.port, b.addr.text, b.port);
}

const NFPROTO = { 4: "meta nfproto ipv4", 6: "meta nfproto ipv6" } as const;
const IP = { 4: "ip", 6: "ip6" } as const;
/** A service as conntrack remembers it: the VIP, protocol and port the client connected to. */
const SERVICE_TYPE = {
  4: "ipv4_addr . inet_proto . inet_service",
  6: "ipv6_addr . inet_proto . inet_service",
} as const;
// `ct original proto-dst` has a type only once the protocol is known, hence the l4proto match
// (and `type`, not `typeof`, in the set declarations).
const SERVICE_OF = {
  4: "ct original ip daddr . meta l4proto . ct original proto-dst",
  6: "ct original ip6 daddr . meta l4proto . ct original proto-dst",
} as const;
const SERVICE_KEY = {
  4: `meta nfproto ipv4 meta l4proto { tcp, udp } ct status dnat ${SERVICE_OF[4]}`,
  6: `meta nfproto ipv6 meta l4proto { tcp, udp } ct status dnat ${SERVICE_OF[6]}`,
} as const;
/**
 * The per-backend counter sets: elements made by the packet path, so only backends that got
 * traffic have one and loading the table writes none (at 5,000 × 50, three sets of 250,000
 * declared elements were three quarters of the load). An element that saw no packet for
 * COUNT_TIMEOUT expires (a removed backend's, or an idle one's: the daemon keeps its total,
 * src/system/service-counters.ts); COUNT_SIZE bounds the memory. Neither depends on the plan,
 * so the declaration never changes.
 */
const COUNT_SIZE = 1_048_576;
const COUNT_TIMEOUT = "7d";
const countSet = (name: string, f: 4 | 6) =>
  typedSet(name, COUNT_TYPE[f], [], {
    flags: ["dynamic", "timeout"],
    timeout: COUNT_TIMEOUT,
    size: COUNT_SIZE,
    counter: true,
    owner: "packet",
  });

export interface ServicesSection {
  /** Declarations and postrouting rules, assembled by `buildTable` like any section. */
  section: NftSection;
  /** Rules for the nat chains at dstnat (`TableParts.dnat`). */
  dnat: { prerouting: string[]; output: string[] };
}

export function buildServices(p: ServicesPlan): ServicesSection {
  const { head, dnat, count, post } = sharedObjects(p);
  // Group maps first (the chains' rules refer to them), then every service's own objects; concat,
  // never a spread: 5,000 services are tens of thousands of objects.
  const objects = head.concat(groupMaps(groupsOf(p)), everyServiceObjects(p));

  // Copies of the kept rule lists (a few lines): the plans built from them never share an array.
  return {
    section: {
      objects,
      prerouting: [],
      output: [],
      postroutingNat: [...post],
      postroutingNatFirst: [...count],
    },
    dnat: { prerouting: [...dnat], output: [...dnat] },
  };
}

/**
 * Every service's objects in one list, the last one patched where services changed: after one
 * backend's change a copy of the list with that service's objects in place, instead of 15,000
 * pushes and 5,000 lookups. Patched only while each changed service keeps its number of objects
 * (a persistence or scheduler change does not; the list is then built again). Never changed in
 * place once handed out.
 */
let lastList: {
  services: readonly PlannedService[];
  list: readonly NftObject[];
  /** Where each service's objects start; one more entry for the end. */
  offsets: Int32Array;
} | null = null;

/**
 * Where `p`'s services may differ from `last`'s: the planner's list when it says `p` is `last` with
 * only those re-planned (no walk over 5,000 services), else every position.
 */
function changedAt(p: ServicesPlan, last: readonly PlannedService[]): Iterable<number> {
  if (p.patched?.from === last) return p.patched.indices;
  return (function* () {
    for (let i = 0; i < p.services.length; i++) yield i;
  })();
}

function everyServiceObjects(p: ServicesPlan): readonly NftObject[] {
  const services = p.services;
  const last = lastList;
  if (last && last.services.length === services.length) {
    let list: NftObject[] | null = null;
    let patched = true;
    for (const i of changedAt(p, last.services)) {
      const s = services[i] as PlannedService;
      if (s === last.services[i]) continue;
      const objects = serviceObjects(s);
      const from = last.offsets[i] as number;
      if (objects.length !== (last.offsets[i + 1] as number) - from) {
        patched = false;
        break;
      }
      list ??= last.list.slice();
      for (let k = 0; k < objects.length; k++) list[from + k] = objects[k] as NftObject;
    }
    if (patched) {
      const out = list ?? last.list;
      lastList = { services, list: out, offsets: last.offsets };
      return out;
    }
  }
  const list: NftObject[] = [];
  const offsets = new Int32Array(services.length + 1);
  for (let i = 0; i < services.length; i++) {
    offsets[i] = list.length;
    for (const o of serviceObjects(services[i] as PlannedService)) list.push(o);
  }
  offsets[services.length] = list.length;
  lastList = { services, list, offsets };
  return list;
}

type Groups = Map<string, { f: 4 | 6; protocol: string; parts: (readonly Element[])[] }>;

/**
 * The services' slot elements by group map, the last one patched where services changed: after
 * one backend's change only that service's group gets a new parts list (the others keep theirs,
 * and groupMaps hands back their maps), instead of 5,000 group names and lookups per plan.
 * Patched only while every changed service keeps its name and group; else built again.
 */
let lastGroups: {
  services: readonly PlannedService[];
  groups: Groups;
  /** Each group's members, as indices into `services`, in order. */
  members: Map<string, number[]>;
} | null = null;

function groupNameOf(s: PlannedService): string | null {
  return groupedSlots(s, persistence(s) !== null) ? groupMapName(s) : null;
}

function groupsOf(p: ServicesPlan): Groups {
  const services = p.services;
  const last = lastGroups;
  if (last && last.services.length === services.length) {
    const dirty = new Set<string>();
    let patched = true;
    for (const i of changedAt(p, last.services)) {
      const s = services[i] as PlannedService;
      const was = last.services[i] as PlannedService;
      if (s === was) continue;
      const g = groupNameOf(s);
      if (s.name !== was.name || g !== groupNameOf(was)) {
        patched = false;
        break;
      }
      if (g !== null) dirty.add(g);
    }
    if (patched) {
      let groups = last.groups;
      if (dirty.size) {
        groups = new Map(last.groups);
        for (const name of dirty) {
          const g = last.groups.get(name);
          const idx = last.members.get(name);
          if (!g || !idx) continue;
          groups.set(name, {
            ...g,
            parts: idx.map((i) => slotElements(services[i] as PlannedService, false)),
          });
        }
      }
      lastGroups = { services, groups, members: last.members };
      return groups;
    }
  }
  const groups: Groups = new Map();
  const members = new Map<string, number[]>();
  for (let i = 0; i < services.length; i++) {
    const s = services[i] as PlannedService;
    const name = groupNameOf(s);
    if (name === null) continue;
    let g = groups.get(name);
    if (!g) groups.set(name, (g = { f: s.family, protocol: s.protocol, parts: [] }));
    g.parts.push(slotElements(s, false));
    let m = members.get(name);
    if (!m) members.set(name, (m = []));
    m.push(i);
  }
  lastGroups = { services, groups, members };
  return groups;
}

interface Shared {
  /** Objects of every service together (dispatch maps, VIP sets, counter sets, hairpin), in order. */
  head: NftObject[];
  dnat: string[];
  count: string[];
  post: string[];
}

/**
 * The last plan's shared objects, handed back while every service keeps its VIP, protocol, port,
 * family and snat (and the hairpin interfaces stay): after one backend's change the diff then skips
 * the 5,000-element dispatch maps by identity instead of comparing them element by element.
 */
let lastShared: { services: readonly PlannedService[]; hairpin: readonly string[]; shared: Shared } | null =
  null;

function sharedObjects(p: ServicesPlan): Shared {
  const last = lastShared;
  if (last && sameHeads(last.services, p) && sameStrings(last.hairpin, p.hairpinIfaces)) {
    lastShared = { ...last, services: p.services };
    return last.shared;
  }
  const shared = buildShared(p);
  lastShared = { services: p.services, hairpin: p.hairpinIfaces, shared };
  return shared;
}

function sameHeads(a: readonly PlannedService[], p: ServicesPlan): boolean {
  const b = p.services;
  if (a.length !== b.length) return false;
  for (const i of changedAt(p, a)) {
    const x = a[i] as PlannedService;
    const y = b[i] as PlannedService;
    if (x === y) continue;
    if (
      x.name !== y.name ||
      x.family !== y.family ||
      x.vip.text !== y.vip.text ||
      x.protocol !== y.protocol ||
      x.port !== y.port ||
      x.snat !== y.snat
    )
      return false;
  }
  return true;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * A service's own objects (slot map, service chain; with persistence its backend chains), built
 * once per planned service: the planner hands back the same PlannedService while nothing of it
 * changed, so after one backend's change only that service's objects are new, and the diff skips
 * the others by identity.
 */
const objectMemo = new WeakMap<PlannedService, NftObject[]>();

function serviceObjects(s: PlannedService): NftObject[] {
  const hit = objectMemo.get(s);
  if (hit) return hit;
  const persist = persistence(s);
  const grouped = groupedSlots(s, persist !== null);
  const objects: NftObject[] = grouped
    ? []
    : [
        map(
          slotsMap(s.name),
          persist ? "numgen inc mod 1 : verdict" : slotsType(s),
          slotElements(s, persist !== null),
          s.scheduler === "random" ? { flags: ["interval"] } : {},
        ),
      ];
  if (persist) {
    for (const o of persist.objects) objects.push(o);
    for (const b of s.backends)
      objects.push(chain(backendChain(s.name, b.index), [...persist.backendRules(b), backendRule(s, b)]));
  }
  // least-conn places the next connections from slot 0 on: its walk restarts with new slots (in
  // a shared map, its rule names its slots instead, see walkTag).
  const decide = decisionRule(s, persist !== null);
  const svc = chain(serviceChain(s.name), persist ? [...persist.serviceRules, decide] : [decide]);
  objects.push(s.scheduler === "least-conn" && !grouped ? { ...svc, restartWith: slotsMap(s.name) } : svc);
  objectMemo.set(s, objects);
  return objects;
}

/**
 * The slot map's declaration: `typeof` with the service's own protocol in the value (`tcp dport`,
 * not `th dport`: nft 1.0.6 refuses a later `add rule … meta l4proto tcp dnat … map @m` against a
 * `th dport` map read back from the kernel, "conflicting protocols"). The modulus is fixed at 1:
 * the declaration must not change with the slot count (that would replace the table).
 */
function slotsType(s: PlannedService): string {
  const gen = s.scheduler === "random" ? "numgen random mod 1" : "numgen inc mod 1";
  return `${gen} : ${IP[s.family]} daddr . ${s.protocol} dport`;
}

function serviceKey(s: PlannedService): string {
  return `${s.vip.text} . ${s.protocol} . ${s.port}`;
}

function backendRule(s: PlannedService, b: PlannedBackend): string {
  const to = s.family === 4 ? `${b.addr.text}:${b.port}` : `[${b.addr.text}]:${b.port}`;
  // The port mapping needs the protocol in the same rule; the dispatch lookup already matched it.
  return `meta l4proto ${s.protocol} dnat ${IP[s.family]} to ${to}`;
}

/**
 * The elements of a service's slot map, built once per slot table: hash tables are cached by the
 * planner (src/plan/maglev.ts), so after one backend's change the other services hand the diff
 * the very same element arrays and cost nothing to build or compare (100 maglev services hold
 * 1.6 million slots).
 */
const slotMemo = new WeakMap<readonly string[], Map<string, Element[]>>();
/**
 * The same by planned service, looked up first: every plan asks for every grouped service's
 * elements (its group's map is assembled from them), and the id below is a string of all its
 * backends, 250,000 of them per plan at 5,000 × 50 (~70 ms and ~50 MB of garbage per change in
 * the daemon, bench/RESULTS.md "issue 11: the one-backend change").
 */
const serviceSlotMemo = new WeakMap<PlannedService, { plain?: Element[]; verdicts?: Element[] }>();

function slotElements(s: PlannedService, verdicts: boolean): Element[] {
  let mine = serviceSlotMemo.get(s);
  const kept = verdicts ? mine?.verdicts : mine?.plain;
  if (kept) return kept;
  const out = slotElementsBySlots(s, verdicts);
  if (!mine) serviceSlotMemo.set(s, (mine = {}));
  if (verdicts) mine.verdicts = out;
  else mine.plain = out;
  return out;
}

function slotElementsBySlots(s: PlannedService, verdicts: boolean): Element[] {
  const id = `${s.name}|${s.scheduler}|${verdicts}|${groupedSlots(s, verdicts) ? groupKeyPrefix(s) : ""}|${s.backends.map((b) => `${b.key}#${b.index}`).join(",")}`;
  let bySlots = slotMemo.get(s.slots);
  const hit = bySlots?.get(id);
  if (hit) return hit;
  const out = buildSlotElements(s, verdicts);
  if (!bySlots) slotMemo.set(s.slots, (bySlots = new Map()));
  bySlots.set(id, out);
  return out;
}

function buildSlotElements(s: PlannedService, verdicts: boolean): Element[] {
  const valueOf = new Map(
    s.backends.map((b) => [
      b.key,
      verdicts ? `goto ${backendChain(s.name, b.index)}` : `${b.addr.text} . ${b.port}`,
    ]),
  );
  if (groupedSlots(s, verdicts)) {
    const prefix = groupKeyPrefix(s);
    return s.slots.map((k, i) => kv(`${prefix}${i}`, valueOf.get(k) ?? ""));
  }
  if (s.scheduler === "random")
    return runs(s.slots).map((r) =>
      kv(r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`, valueOf.get(r.name) ?? ""),
    );
  return s.slots.map((k, i) => kv(`${i}`, valueOf.get(k) ?? ""));
}

/**
 * least-conn's walk must restart at slot 0 whenever its slots change, also when their number does
 * not: its rule carries a hash of them, so the diff rewrites the rule (a fresh `numgen inc`) exactly
 * then. (A chain's `restartWith` names a whole map: in a shared one, any member's change would
 * restart every least-conn service of the group.)
 */
function walkTag(s: PlannedService): string {
  if (s.scheduler !== "least-conn") return "";
  let h = 0x811c9dc5;
  for (const k of s.slots) {
    for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193) >>> 0;
    h = Math.imul(h ^ 44, 0x01000193) >>> 0;
  }
  return ` comment "walk ${h.toString(16).padStart(8, "0")}"`;
}

function decisionRule(s: PlannedService, verdicts: boolean): string {
  const n = s.slots.length;
  // No backend may take a new connection: refuse it here rather than deliver it to the VIP itself.
  if (n === 0) return "drop";
  const seed = hex(s.hashSeed);
  const pick = {
    "round-robin": `numgen inc mod ${n}`,
    "least-conn": `numgen inc mod ${n}`,
    random: `numgen random mod ${n}`,
    "source-hash": `jhash ${IP[s.family]} saddr mod ${n} seed ${seed}`,
    maglev: `jhash ${IP[s.family]} saddr mod ${n} seed ${seed}`,
  }[s.scheduler];
  if (verdicts) return `${pick} vmap @${slotsMap(s.name)}`;
  // The port mapping needs the protocol in the same rule; the dispatch lookup already matched it.
  const dnat = `meta l4proto ${s.protocol} dnat ${IP[s.family]} to`;
  if (groupedSlots(s, verdicts))
    return `${dnat} ${IP[s.family]} daddr . ${s.protocol} dport . ${pick} map @${groupMapName(s)}${walkTag(s)}`;
  return `${dnat} ${pick} map @${slotsMap(s.name)}`;
}

function buildShared(p: ServicesPlan): Shared {
  const objects: NftObject[] = [];
  const dnat: string[] = [];
  const count: string[] = [];
  const post: string[] = [];
  const fams = ([4, 6] as const).filter((f) => p.services.some((s) => s.family === f));

  for (const f of fams) {
    const of = p.services.filter((s) => s.family === f);
    objects.push(
      map(
        SVC_DISPATCH[f],
        `${IP[f]} daddr . meta l4proto . th dport : verdict`,
        of.map((s) => kv(serviceKey(s), `goto ${serviceChain(s.name)}`)),
      ),
    );
    dnat.push(`${NFPROTO[f]} ${IP[f]} daddr . meta l4proto . th dport vmap @${SVC_DISPATCH[f]}`);
    objects.push(typedSet(SVC_VIPS[f], SERVICE_TYPE[f], of.map(serviceKey)));
    const snat = of.filter((s) => s.snat);
    if (snat.length) {
      objects.push(typedSet(SVC_SNAT[f], SERVICE_TYPE[f], snat.map(serviceKey)));
      post.push(`${SERVICE_KEY[f]} @${SVC_SNAT[f]} masquerade`);
    }
  }
  const bytesRules: string[] = [];
  for (const f of fams) {
    // Only connections to nflb's own services (@svc_vips): another table's DNAT makes no element.
    const ours = `${SERVICE_KEY[f]} @${SVC_VIPS[f]}`;
    objects.push(countSet(SVC_CONNS[f], f));
    count.push(`${ours} update @${SVC_CONNS[f]} { ${SERVICE_OF[f]} . ${IP[f]} daddr . th dport }`);
    for (const dir of ["to", "from"] as const) {
      objects.push(countSet(SVC_BYTES[dir][f], f));
      const backend = dir === "to" ? `${IP[f]} daddr . th dport` : `${IP[f]} saddr . th sport`;
      const ctDir = dir === "to" ? "original" : "reply";
      bytesRules.push(
        `${SERVICE_KEY[f]} @${SVC_VIPS[f]} ct direction ${ctDir} update @${SVC_BYTES[dir][f]} { ${SERVICE_OF[f]} . ${backend} }`,
      );
    }
  }
  if (bytesRules.length)
    objects.push(
      chain(BASE_CHAINS.svc_bytes, bytesRules, {
        type: "filter",
        hook: "forward",
        priority: "filter",
        policy: "accept",
      }),
    );
  if (fams.length && p.hairpinIfaces.length) {
    objects.push(
      set(
        SVC_HAIRPIN,
        "iifname . oifname",
        p.hairpinIfaces.map((i) => `${q(i)} . ${q(i)}`),
      ),
    );
    // Only connections to our own services: another table's DNAT is none of nflb's business.
    for (const f of fams)
      post.push(`iifname . oifname @${SVC_HAIRPIN} ${SERVICE_KEY[f]} @${SVC_VIPS[f]} masquerade`);
  }
  return { head: objects, dnat, count, post };
}
