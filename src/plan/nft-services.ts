import type { PlannedBackend, PlannedService, ServicesPlan } from "./services.ts";
import { runs } from "./split.ts";
import type { Element, NftObject } from "../nft/model.ts";
import { chain, counter, kv, map, set, typedMap, typedSet } from "../nft/objects.ts";
import { hex, q } from "../nft/text.ts";
import {
  BASE_CHAINS,
  backendBytesCounters,
  backendChain,
  backendCounter,
  serviceChain,
  slotsMap,
  SVC_BYTES,
  SVC_DISPATCH,
  SVC_HAIRPIN,
  SVC_SNAT,
  SVC_VIPS,
} from "../nft/names.ts";
import type { NftSection } from "./nft-table.ts";
import { persistence } from "./nft-persist.ts";

/**
 * Services in nft: one lookup per new connection, whatever the number of services and backends.
 *
 *   nat prerouting/output @ dstnat:  daddr . l4proto . dport  vmap @svc_dispatch4|6  → goto svc_NAME
 *   svc_NAME:    numgen inc|random / jhash saddr  mod N  vmap @svc_NAME_slots       → goto svc_NAME_bK
 *   svc_NAME_bK: counter svc_NAME_bK, dnat to the backend
 *   nat postrouting @ srcnat: masquerade `snat: true` services and hairpin connections
 *
 * Health, drain and load change only `svc_NAME_slots` and the one rule of `svc_NAME` (its
 * modulus): the diff (src/nft/diff.ts) sends only those, and only for services that changed.
 *
 * Bytes per backend: a forward-hook chain `svc_bytes` looks up (VIP . proto . port . backend
 * address . backend port) of every DNATed packet in a counter map, one per direction: one
 * lookup per packet whatever the number of backends. (Connections from the router itself, via
 * the output DNAT chain, are not forwarded and not counted in bytes.)
 */
const BYTES_TYPE = {
  4: "ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service : counter",
  6: "ipv6_addr . inet_proto . inet_service . ipv6_addr . inet_service : counter",
} as const;

/** Every backend's named counter, for `readCounters` → `nflb_backend_connections_total`. */
export function backendCounters(p: ServicesPlan): { service: string; backend: string; counter: string }[] {
  return p.services.flatMap((s) =>
    s.backends.map((b) => ({ service: s.name, backend: b.key, counter: backendCounter(s.name, b.index) })),
  );
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
const SERVICE_KEY = {
  4: "meta nfproto ipv4 meta l4proto { tcp, udp } ct status dnat ct original ip daddr . meta l4proto . ct original proto-dst",
  6: "meta nfproto ipv6 meta l4proto { tcp, udp } ct status dnat ct original ip6 daddr . meta l4proto . ct original proto-dst",
} as const;

export interface ServicesSection {
  /** Declarations and postrouting rules, assembled by `buildTable` like any section. */
  section: NftSection;
  /** Rules for the nat chains at dstnat (`TableParts.dnat`). */
  dnat: { prerouting: string[]; output: string[] };
}

export function buildServices(p: ServicesPlan): ServicesSection {
  const objects: NftObject[] = [];
  const dnat: string[] = [];
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
    const of = p.services.filter((s) => s.family === f);
    for (const dir of ["to", "from"] as const) {
      const elements = joined(
        `${dir}${f}`,
        of.map((s) => bytesElements(s)[dir]),
      );
      objects.push(typedMap(SVC_BYTES[dir][f], BYTES_TYPE[f], elements));
      const backend = dir === "to" ? `${IP[f]} daddr . th dport` : `${IP[f]} saddr . th sport`;
      const ctDir = dir === "to" ? "original" : "reply";
      bytesRules.push(
        `${NFPROTO[f]} meta l4proto { tcp, udp } ct status dnat ct direction ${ctDir} counter name ct original ${IP[f]} daddr . meta l4proto . ct original proto-dst . ${backend} map @${SVC_BYTES[dir][f]}`,
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

  // One array push per object, never a spread: 5,000 services × 50 backends are a million objects.
  for (const s of p.services) for (const o of serviceObjects(s)) objects.push(o);

  return {
    section: { objects, prerouting: [], output: [], postroutingNat: post },
    dnat: { prerouting: dnat, output: [...dnat] },
  };
}

/**
 * A service's own objects (slot map, backend chains and counters, service chain), built once per
 * planned service: the planner hands back the same PlannedService while nothing of it changed, so
 * after one backend's change only that service's objects are new, and the diff skips the others
 * by identity.
 */
const objectMemo = new WeakMap<PlannedService, NftObject[]>();

function serviceObjects(s: PlannedService): NftObject[] {
  const hit = objectMemo.get(s);
  if (hit) return hit;
  const objects: NftObject[] = [
    map(
      slotsMap(s.name),
      "numgen inc mod 1 : verdict",
      slotElements(s),
      s.scheduler === "random" ? { flags: ["interval"] } : {},
    ),
  ];
  const persist = persistence(s);
  if (persist) for (const o of persist.objects) objects.push(o);
  for (const b of s.backends) {
    objects.push(counter(backendCounter(s.name, b.index)));
    const bytes = backendBytesCounters(s.name, b.index);
    objects.push(counter(bytes.to), counter(bytes.from));
    const rule = backendRule(s, b);
    objects.push(chain(backendChain(s.name, b.index), persist ? [...persist.backendRules(b), rule] : [rule]));
  }
  // least-conn places the next connections from slot 0 on: its walk restarts with new slots.
  const decide = decisionRule(s);
  const svc = chain(serviceChain(s.name), persist ? [...persist.serviceRules, decide] : [decide]);
  objects.push(s.scheduler === "least-conn" ? { ...svc, restartWith: slotsMap(s.name) } : svc);
  objectMemo.set(s, objects);
  return objects;
}

type BytesElements = { to: Element[]; from: Element[] };
const bytesMemo = new WeakMap<PlannedService, BytesElements>();
/** The last bytes elements per service name: a health change gives a new plan, not new elements. */
const lastBytes = new Map<string, BytesElements>();

/** The service's entries in the per-backend bytes maps (they depend on addresses, not health). */
function bytesElements(s: PlannedService): BytesElements {
  const hit = bytesMemo.get(s);
  if (hit) return hit;
  const made: BytesElements = { to: [], from: [] };
  for (const dir of ["to", "from"] as const)
    for (const b of s.backends)
      made[dir].push(
        kv(
          `${serviceKey(s)} . ${b.addr.text} . ${b.port}`,
          JSON.stringify(backendBytesCounters(s.name, b.index)[dir]),
        ),
      );
  const was = lastBytes.get(s.name);
  const out = was && sameKv(was.to, made.to) && sameKv(was.from, made.from) ? was : made;
  if (lastBytes.size > 100_000) lastBytes.clear();
  lastBytes.set(s.name, out);
  bytesMemo.set(s, out);
  return out;
}

const sameKv = (a: Element[], b: Element[]) =>
  a.length === b.length && a.every((e, i) => e.key === b[i]?.key && e.value === b[i]?.value);

/** The concatenation of `parts`, the same array as last time for `id` when every part is the same. */
const joinMemo = new Map<string, { parts: Element[][]; all: Element[] }>();

function joined(id: string, parts: Element[][]): Element[] {
  const was = joinMemo.get(id);
  if (was && was.parts.length === parts.length && was.parts.every((p, i) => p === parts[i])) return was.all;
  const all: Element[] = [];
  for (const p of parts) for (const e of p) all.push(e);
  joinMemo.set(id, { parts, all });
  return all;
}

function serviceKey(s: PlannedService): string {
  return `${s.vip.text} . ${s.protocol} . ${s.port}`;
}

function backendRule(s: PlannedService, b: PlannedBackend): string {
  const to = s.family === 4 ? `${b.addr.text}:${b.port}` : `[${b.addr.text}]:${b.port}`;
  // The port mapping needs the protocol in the same rule; the dispatch lookup already matched it.
  return `meta l4proto ${s.protocol} counter name ${backendCounter(s.name, b.index)} dnat ${IP[s.family]} to ${to}`;
}

/**
 * The elements of a service's slot map, built once per slot table: hash tables are cached by the
 * planner (src/plan/maglev.ts), so after one backend's change the other services hand the diff
 * the very same element arrays and cost nothing to build or compare (100 maglev services hold
 * 1.6 million slots).
 */
const slotMemo = new WeakMap<readonly string[], Map<string, Element[]>>();

function slotElements(s: PlannedService): Element[] {
  const id = `${s.name}|${s.scheduler}|${s.backends.map((b) => `${b.key}#${b.index}`).join(",")}`;
  let bySlots = slotMemo.get(s.slots);
  const hit = bySlots?.get(id);
  if (hit) return hit;
  const out = buildSlotElements(s);
  if (!bySlots) slotMemo.set(s.slots, (bySlots = new Map()));
  bySlots.set(id, out);
  return out;
}

function buildSlotElements(s: PlannedService): Element[] {
  const chainOf = chains(s);
  if (s.scheduler === "random")
    return runs(s.slots).map((r) =>
      kv(r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`, `goto ${chainOf.get(r.name) ?? ""}`),
    );
  return s.slots.map((k, i) => kv(`${i}`, `goto ${chainOf.get(k) ?? ""}`));
}

function decisionRule(s: PlannedService): string {
  const n = s.slots.length;
  // No backend may take a new connection: refuse it here rather than deliver it to the VIP itself.
  if (n === 0) return "drop";
  const map = `@${slotsMap(s.name)}`;
  const seed = hex(s.hashSeed);
  return {
    "round-robin": `numgen inc mod ${n} vmap ${map}`,
    "least-conn": `numgen inc mod ${n} vmap ${map}`,
    random: `numgen random mod ${n} vmap ${map}`,
    "source-hash": `jhash ${IP[s.family]} saddr mod ${n} seed ${seed} vmap ${map}`,
    maglev: `jhash ${IP[s.family]} saddr mod ${n} seed ${seed} vmap ${map}`,
  }[s.scheduler];
}

const chains = (s: PlannedService) => new Map(s.backends.map((b) => [b.key, backendChain(s.name, b.index)]));
