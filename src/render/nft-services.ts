import type { PlannedBackend, PlannedService, ServicesPlan } from "../plan/services.ts";
import { runs } from "../plan/split.ts";
import { chainBlock, hex, mapBlock, q, setBlock } from "./nft-text.ts";
import type { NftSection } from "./nft-uplinks.ts";

/**
 * Services in nft: one lookup per new connection, whatever the number of services and backends.
 *
 *   nat prerouting/output @ dstnat:  daddr . l4proto . dport  vmap @svc_dispatch4|6  → goto svc_NAME
 *   svc_NAME:    numgen inc|random / jhash saddr  mod N  vmap @svc_NAME_slots       → goto svc_NAME_bK
 *   svc_NAME_bK: counter svc_NAME_bK, dnat to the backend
 *   nat postrouting @ srcnat: masquerade `snat: true` services and hairpin connections
 *
 * Health, drain and load change only `svc_NAME_slots` and the one rule of `svc_NAME`
 * (its modulus), rewritten in place by `renderServicesUpdate`.
 *
 * Bytes per backend: a forward-hook chain `svc_bytes` looks up (VIP . proto . port . backend
 * address . backend port) of every DNATed packet in a counter map, one per direction: one
 * lookup per packet whatever the number of backends. (Connections from the router itself, via
 * the output DNAT chain, are not forwarded and not counted in bytes.)
 */
export const serviceChain = (s: string) => `svc_${s}`;
export const slotsMap = (s: string) => `svc_${s}_slots`;
/** Chain and named counter of one backend (the counter counts new connections sent to it). */
export const backendChain = (s: string, index: number) => `svc_${s}_b${index}`;
export const backendCounter = backendChain;
/** Named counters of the bytes sent to a backend and received from it. */
export const backendBytesCounters = (s: string, index: number) => ({
  to: `${backendChain(s, index)}_to`,
  from: `${backendChain(s, index)}_from`,
});
const BYTES = {
  to: { 4: "svc_bytes_to4", 6: "svc_bytes_to6" },
  from: { 4: "svc_bytes_from4", 6: "svc_bytes_from6" },
} as const;
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

const DISPATCH = { 4: "svc_dispatch4", 6: "svc_dispatch6" } as const;
const SNAT = { 4: "svc_snat4", 6: "svc_snat6" } as const;
const OURS = { 4: "svc_vips4", 6: "svc_vips6" } as const;
const HAIRPIN = "svc_hairpin";
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
  /** Declarations and postrouting rules, assembled by `renderTable` like any section. */
  section: NftSection;
  /** Rules for the nat chains at dstnat (`TableSections.dnat`). */
  dnat: { prerouting: string[]; output: string[] };
}

export function renderServices(p: ServicesPlan): ServicesSection {
  const body: string[] = [];
  const dnat: string[] = [];
  const post: string[] = [];
  const fams = ([4, 6] as const).filter((f) => p.services.some((s) => s.family === f));

  for (const f of fams) {
    const of = p.services.filter((s) => s.family === f);
    body.push(
      ...mapBlock(
        DISPATCH[f],
        `${IP[f]} daddr . meta l4proto . th dport : verdict`,
        of.map((s) => `${s.vip.text} . ${s.protocol} . ${s.port} : goto ${serviceChain(s.name)}`),
      ),
    );
    dnat.push(`${NFPROTO[f]} ${IP[f]} daddr . meta l4proto . th dport vmap @${DISPATCH[f]}`);
    body.push(...typedSet(OURS[f], SERVICE_TYPE[f], of.map(serviceKey)));
    const snat = of.filter((s) => s.snat);
    if (snat.length) {
      body.push(...typedSet(SNAT[f], SERVICE_TYPE[f], snat.map(serviceKey)));
      post.push(`${SERVICE_KEY[f]} @${SNAT[f]} masquerade`);
    }
  }
  const bytesRules: string[] = [];
  for (const f of fams) {
    const of = p.services.filter((s) => s.family === f);
    for (const dir of ["to", "from"] as const) {
      const elements = of.flatMap((s) =>
        s.backends.map(
          (b) =>
            `${serviceKey(s)} . ${b.addr.text} . ${b.port} : ${JSON.stringify(backendBytesCounters(s.name, b.index)[dir])}`,
        ),
      );
      body.push(`\tmap ${BYTES[dir][f]} {`, `\t\ttype ${BYTES_TYPE[f]}`);
      if (elements.length) body.push(`\t\telements = { ${elements.join(", ")} }`);
      body.push("\t}");
      const backend = dir === "to" ? `${IP[f]} daddr . th dport` : `${IP[f]} saddr . th sport`;
      const ctDir = dir === "to" ? "original" : "reply";
      bytesRules.push(
        `${NFPROTO[f]} meta l4proto { tcp, udp } ct status dnat ct direction ${ctDir} counter name ct original ${IP[f]} daddr . meta l4proto . ct original proto-dst . ${backend} map @${BYTES[dir][f]}`,
      );
    }
  }
  if (bytesRules.length)
    body.push(
      ...chainBlock("svc_bytes", bytesRules, "type filter hook forward priority filter; policy accept;"),
    );
  if (fams.length && p.hairpinIfaces.length) {
    body.push(
      ...setBlock(
        HAIRPIN,
        "iifname . oifname",
        p.hairpinIfaces.map((i) => `${q(i)} . ${q(i)}`),
      ),
    );
    // Only connections to our own services: another table's DNAT is none of nflb's business.
    for (const f of fams) post.push(`iifname . oifname @${HAIRPIN} ${SERVICE_KEY[f]} @${OURS[f]} masquerade`);
  }

  for (const s of p.services) {
    const d = dynamicParts(s);
    body.push(
      ...mapBlock(slotsMap(s.name), "numgen inc mod 1 : verdict", d.elements, d.interval ? ["interval"] : []),
    );
    for (const b of s.backends) {
      body.push(`\tcounter ${backendCounter(s.name, b.index)} {`, "\t}");
      const bytes = backendBytesCounters(s.name, b.index);
      body.push(`\tcounter ${bytes.to} {`, "\t}", `\tcounter ${bytes.from} {`, "\t}");
      body.push(...chainBlock(backendChain(s.name, b.index), [backendRule(s, b)]));
    }
    body.push(...chainBlock(serviceChain(s.name), [d.rule]));
  }

  return {
    section: { body, prerouting: [], output: [], postroutingNat: post },
    dnat: { prerouting: dnat, output: [...dnat] },
  };
}

function serviceKey(s: PlannedService): string {
  return `${s.vip.text} . ${s.protocol} . ${s.port}`;
}

function typedSet(name: string, type: string, elements: string[]): string[] {
  const lines = [`\tset ${name} {`, `\t\ttype ${type}`];
  if (elements.length) lines.push(`\t\telements = { ${elements.join(", ")} }`);
  return [...lines, "\t}"];
}

function backendRule(s: PlannedService, b: PlannedBackend): string {
  const to = s.family === 4 ? `${b.addr.text}:${b.port}` : `[${b.addr.text}]:${b.port}`;
  // The port mapping needs the protocol in the same rule; the dispatch lookup already matched it.
  return `meta l4proto ${s.protocol} counter name ${backendCounter(s.name, b.index)} dnat ${IP[s.family]} to ${to}`;
}

/** The health- and load-dependent part of one service: its slot map and its single decision rule. */
export function dynamicParts(s: PlannedService): { rule: string; elements: string[]; interval: boolean } {
  const chainOf = chains(s);
  const interval = s.scheduler === "random";
  const elements = interval
    ? runs(s.slots).map(
        (r) => `${r.from === r.to ? r.from : `${r.from}-${r.to}`} : goto ${chainOf.get(r.name)}`,
      )
    : s.slots.map((k, i) => `${i} : goto ${chainOf.get(k)}`);
  return { rule: decisionRule(s), elements, interval };
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

/**
 * In-place update of the services' dynamic parts, for a table built from the same config. With
 * `prev` (the plan the kernel holds now) only services that changed are rewritten, so one backend
 * going down is a transaction of one map and at most one rule, and the other services'
 * round-robin positions are not reset. Hash schedulers (fixed modulus, no counter) get only the
 * slots that changed: a maglev failure touches ~M/N elements, not M. A rotation's rule is always
 * re-added, which restarts its `numgen inc` at slot 0 (least-conn relies on that).
 */
export function renderServicesUpdate(p: ServicesPlan, table: string, prev?: ServicesPlan | null): string[] {
  const before = new Map((prev?.services ?? []).map((s) => [s.name, s]));
  const out: string[] = [];
  for (const s of p.services) {
    const old = before.get(s.name);
    const rule = decisionRule(s);
    const sameRule = old !== undefined && decisionRule(old) === rule;
    // Slots are compared as backend keys, before any text is built: 100 maglev services re-planned
    // after one change cost one table's worth of strings, not a hundred.
    if (old && sameRule && sameList(old.slots, s.slots)) continue;
    const map = `${table} ${slotsMap(s.name)}`;
    if (old && sameRule && isHash(s) && isHash(old)) {
      const chainOf = chains(s);
      const changed = s.slots.flatMap((k, i) => (old.slots[i] === k ? [] : [i]));
      out.push(`delete element ${map} { ${changed.join(", ")} }`);
      out.push(
        `add element ${map} { ${changed.map((i) => `${i} : goto ${chainOf.get(s.slots[i] ?? "")}`).join(", ")} }`,
      );
      continue;
    }
    const d = dynamicParts(s);
    out.push(`flush map ${map}`);
    if (d.elements.length) out.push(`add element ${map} { ${d.elements.join(", ")} }`);
    out.push(
      `flush chain ${table} ${serviceChain(s.name)}`,
      `add rule ${table} ${serviceChain(s.name)} ${rule}`,
    );
  }
  return out;
}

const isHash = (s: PlannedService) => s.scheduler === "maglev" || s.scheduler === "source-hash";

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
