import type { Config, ServiceConfig } from "../config/schema.ts";
import { parseHostPort, type Addr } from "../net/ip.ts";
import { maglevPools, maglevSize, maglevTable, type MaglevPools } from "./maglev.ts";
import { hashBuckets, rotationSlots, type Weighted } from "./split.ts";
import type { BackendHealth, Facts, ServiceHealth } from "./types.ts";
import type { ServiceChanges } from "./desired.ts";
import { serviceEntries } from "../config/service-entries.ts";

/**
 * Inbound balancing of a virtual IP:port over backends. The kernel decides once per new
 * connection by indexing a slot table (`numgen|jhash … mod slots.length`); this module only
 * computes that table from the config, health and load.
 */
export type Scheduler = ServiceConfig["scheduler"];
export type BackendState = "up" | "down" | "draining";

export interface PlannedBackend {
  /** `ADDRESS:PORT` as written in the config: the key of health, API and metrics. */
  key: string;
  /** Position in the config: names the backend's nft chain and counter. */
  index: number;
  addr: Addr;
  port: number;
  configWeight: number;
  /** Effective weight (health override or config); 0 while draining or down. */
  weight: number;
  state: BackendState;
  connections: number;
  /** `backup: true`: in the slots only while no regular backend is up (absent: false). */
  backup?: boolean;
}

export interface PlannedService {
  name: string;
  family: 4 | 6;
  vip: Addr;
  port: number;
  protocol: "tcp" | "udp";
  scheduler: Scheduler;
  snat: boolean;
  backends: PlannedBackend[];
  /** Backend key per slot; empty when no backend may take new connections. */
  slots: string[];
  hashSeed: number;
  /** `persistence`: a client keeps its backend this long after its last new connection. */
  persistenceMs?: number;
  /** No regular backend is up: the backups hold the slots (absent: false). */
  onBackups?: boolean;
  /** maglev: each pool's configured table, which the next plan's are dealt from (src/plan/maglev.ts). */
  maglev?: MaglevPools;
}

export interface ServicesPlan {
  services: PlannedService[];
  /**
   * Interfaces on which a DNATed connection that leaves by the interface it came in on is
   * masqueraded (hairpin: the client shares the backends' subnet, so the backend would answer it
   * directly and bypass the un-DNAT).
   */
  hairpinIfaces: string[];
  /**
   * The health records planned from, when their builder keeps and patches them (the daemon's):
   * the next plan from the same config and container re-plans only the services whose record
   * changed since this build (HealthView.changes).
   */
  basis?: { config: Config; health: ServiceHealth; gen: number };
  /**
   * This plan's services are `from` with only those at `indices` planned again (the same services
   * in the same order): the model builder patches its last lists there instead of walking them all.
   */
  patched?: { from: readonly PlannedService[]; indices: readonly number[] };
}

/** Slots of a least-conn plan: how many new connections are placed ahead before the next refresh. */
export function leastConnLength(live: number): number {
  return Math.min(8192, Math.max(256, 4 * live));
}

/** `previous`: the plan in force, whose maglev tables a config edit changes as little as it can. */
export function planServices(
  c: Config,
  health: ServiceHealth,
  facts?: Facts,
  previous?: ServicesPlan | null,
  changes?: ServiceChanges,
): ServicesPlan | null {
  const entries = serviceEntries(c);
  if (entries.length === 0) return null;
  const hairpinIfaces = [...(facts?.interfaces.keys() ?? [])].filter((n) => n !== "lo").sort();
  const basis = changes ? { config: c, health, gen: changes.gen } : undefined;
  // The records changed since the previous plan's build, when the same builder made both from the
  // same config: only those services are planned again; the others keep their plan.
  const b = previous?.basis;
  const changed =
    b && changes && b.config === c && b.health === health && previous.services.length === entries.length
      ? changes.since(b.gen)
      : null;
  if (previous && changed) {
    const services = previous.services.slice();
    const indices: number[] = [];
    const at = indexOf(c);
    for (const name of changed) {
      const i = at.get(name);
      if (i === undefined) continue;
      const s = (entries[i] as (typeof entries)[number])[1];
      const was = previous.services[i] as PlannedService;
      const next = planOne(name, s, health[name], () => (was.name === name ? was : undefined));
      if (next !== was) {
        services[i] = next;
        indices.push(i);
      }
    }
    indices.sort((x, y) => x - y);
    return {
      services,
      hairpinIfaces,
      ...(basis ? { basis } : {}),
      patched: { from: previous.services, indices },
    };
  }
  const was = previous?.services ?? [];
  let byName: Map<string, PlannedService> | undefined;
  // The previous plan of a service is looked up only to plan it again (maglev deals from it);
  // services keep their order, so it is usually at the same place.
  const previousOf = (name: string, i: number) => {
    const same = was[i];
    if (same?.name === name) return same;
    byName ??= new Map(was.map((p) => [p.name, p]));
    return byName.get(name);
  };
  const services = new Array<PlannedService>(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const [name, s] = entries[i] as (typeof entries)[number];
    services[i] = planOne(name, s, health[name], () => previousOf(name, i));
  }
  return { services, hairpinIfaces, ...(basis ? { basis } : {}) };
}

/** `previous` is asked for only when the service is planned again (maglev deals from it). */
function planOne(
  name: string,
  s: ServiceConfig,
  record: Record<string, BackendHealth> | undefined,
  previous: () => PlannedService | undefined,
): PlannedService {
  const hit = planMemo.get(s);
  // The very record planned from (the daemon keeps a service's record while its inputs stay):
  // nothing to compare, nothing to allocate.
  return hit && hit.name === name && hit.record === record
    ? hit.planned
    : planCached(name, s, record, previous());
}

/** name → position among the config's services. */
const indices = new WeakMap<Config, Map<string, number>>();

function indexOf(c: Config): Map<string, number> {
  let m = indices.get(c);
  if (!m) indices.set(c, (m = new Map(serviceEntries(c).map(([n], i) => [n, i]))));
  return m;
}

/**
 * The previous plan of a service, reused while its config object and its backends' health are the
 * same: after one backend's change the daemon re-plans 5,000 services, and the unchanged ones must
 * cost a lookup, not a plan (and hand the model builder the same object, which it caches on).
 * A health record is never changed in place once handed in (callers build a new one), so the very
 * record planned from means the same health.
 */
const planMemo = new WeakMap<
  ServiceConfig,
  {
    name: string;
    /** The health record planned from, as handed in: the daemon's is the same object while unchanged. */
    record: Record<string, BackendHealth> | undefined;
    health: (BackendHealth | undefined)[];
    planned: PlannedService;
  }
>();

function planCached(
  name: string,
  s: ServiceConfig,
  record: Record<string, BackendHealth> | undefined,
  previous: PlannedService | undefined,
): PlannedService {
  const hit = planMemo.get(s);
  const health = record ?? {};
  if (hit && hit.name === name) {
    // Another record than the one planned from: compared field by field.
    if (hit.record === record) return hit.planned;
    if (sameHealth(s, health, hit.health)) {
      hit.record = record;
      return hit.planned;
    }
  }
  const planned = planService(name, s, health, previous);
  planMemo.set(s, { name, record, health: s.backends.map((b) => copy(health[b.address])), planned });
  return planned;
}

const copy = (h: BackendHealth | undefined) => (h ? { ...h } : undefined);

function fields(h: BackendHealth): number {
  let n = 0;
  for (const _ in h) n++;
  return n;
}

function sameHealth(
  s: ServiceConfig,
  now: Record<string, BackendHealth>,
  was: (BackendHealth | undefined)[],
) {
  for (let i = 0; i < s.backends.length; i++) {
    const a = now[(s.backends[i] as { address: string }).address];
    const b = was[i];
    if (a === undefined || b === undefined) {
      if (a !== b) return false;
      continue;
    }
    // Every field, so one added to BackendHealth later is compared too.
    let n = 0;
    for (const k in a) {
      if (a[k as keyof BackendHealth] !== b[k as keyof BackendHealth]) return false;
      n++;
    }
    if (n !== fields(b)) return false;
  }
  return true;
}

function planService(
  name: string,
  s: ServiceConfig,
  health: Record<string, BackendHealth>,
  previous?: PlannedService,
): PlannedService {
  const listen = hostPort(s.listen);
  const backends = s.backends.map((b, index): PlannedBackend => {
    const hp = hostPort(b.address);
    const h = health[b.address];
    const up = h?.up ?? true;
    const weight = up ? (h?.weight ?? b.weight) : 0;
    return {
      key: b.address,
      index,
      addr: hp.addr,
      port: hp.port,
      configWeight: b.weight,
      weight,
      state: !up ? "down" : weight === 0 ? "draining" : "up",
      connections: Math.max(0, h?.connections ?? 0),
      ...(b.backup === true ? { backup: true } : {}),
    };
  });
  const onBackups = !backends.some((b) => b.backup !== true && b.state === "up");
  const maglev =
    s.scheduler === "maglev"
      ? maglevPools(
          backends.map((b) => ({ name: b.key, weight: b.configWeight, backup: b.backup === true })),
          previous?.maglev,
        )
      : undefined;
  return {
    name,
    family: listen.addr.family,
    vip: listen.addr,
    port: listen.port,
    protocol: s.protocol,
    scheduler: s.scheduler,
    snat: s.snat,
    backends,
    // The pool is the regular backends, or the backups while none of those is up.
    slots: slotsFor(
      s.scheduler,
      backends.filter((b) => (b.backup === true) === onBackups),
      maglev?.[onBackups ? "backup" : "regular"],
    ),
    onBackups,
    hashSeed: seedOf(`service:${name}`),
    ...(s.persistence !== undefined ? { persistenceMs: s.persistence } : {}),
    ...(maglev ? { maglev } : {}),
  };
}

/** `base`: maglev's configured table for these backends (else populated from them). */
export function slotsFor(scheduler: Scheduler, backends: PlannedBackend[], base?: string[]): string[] {
  const live = backends.filter((b) => b.state === "up");
  if (live.length === 0) return [];
  const weighted: Weighted[] = live.map((b) => ({ name: b.key, weight: b.weight }));
  switch (scheduler) {
    case "round-robin":
      return rotationSlots(weighted, true);
    case "random":
      return rotationSlots(weighted, false);
    case "source-hash": {
      // Buckets are dealt by configured weight first, so a failure moves only its own clients.
      const configured = backends
        .filter((b) => b.configWeight > 0)
        .map((b) => ({ name: b.key, weight: b.configWeight }));
      return hashBuckets(
        configured.length ? configured : weighted,
        new Set(live.map((b) => b.key)),
        weighted,
      );
    }
    case "maglev":
      // The size and the populated table follow the configured backends, never the live ones:
      // `jhash mod M` must not change, and a failure deals out only the failed backend's slots.
      return maglevTable(
        weighted,
        maglevSize(backends.length),
        backends.map((b) => ({ name: b.key, weight: b.configWeight })),
        base,
      );
    case "least-conn":
      return leastConnSequence(
        live.map((b) => ({ name: b.key, weight: b.weight, connections: b.connections })),
        leastConnLength(live.length),
      );
  }
}

/**
 * The next `length` new connections of a least-connection scheduler, placed ahead of time: each
 * goes to the backend with the fewest connections per weight, counting those already placed
 * (ties: larger weight, then config order). Levelled loads continue as a weighted rotation. The
 * kernel walks the sequence with `numgen inc`; the daemon re-plans from fresh conntrack counts.
 */
export function leastConnSequence(
  items: { name: string; weight: number; connections: number }[],
  length: number,
): string[] {
  const live = items.filter((i) => i.weight > 0);
  if (live.length === 0) return [];
  const load = live.map((i) => i.connections);
  const out: string[] = [];
  for (let n = 0; n < length; n++) {
    let best = 0;
    for (let i = 1; i < live.length; i++) {
      const a = live[i] as (typeof live)[number];
      const b = live[best] as (typeof live)[number];
      // Compare load/weight without division: la/wa < lb/wb ⇔ la·wb < lb·wa.
      const x = (load[i] ?? 0) * b.weight;
      const y = (load[best] ?? 0) * a.weight;
      if (x < y || (x === y && a.weight > b.weight)) best = i;
    }
    load[best] = (load[best] ?? 0) + 1;
    out.push(live[best]?.name ?? "");
  }
  return out;
}

function hostPort(s: string): { addr: Addr; port: number } {
  const p = parseHostPort(s);
  // The schema has validated every address; this only narrows the type.
  if ("error" in p) throw new Error(p.error);
  return p;
}

/** A stable hash seed per service, so hash placement survives restarts and reloads. */
function seedOf(s: string): number {
  let h = 0x811c9dc5;
  for (const ch of s) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

const udpConfigs = new WeakMap<Config, boolean>();

/** The config has a UDP service (once per config object: the daemon asks on every run). */
export function hasUdpServices(c: Config): boolean {
  let v = udpConfigs.get(c);
  if (v === undefined) udpConfigs.set(c, (v = serviceEntries(c).some(([, s]) => s.protocol === "udp")));
  return v;
}

/** One UDP service's flows that conntrack pins to one backend (what `conntrack -D` selects). */
export interface PinnedFlows {
  service: string;
  backend: string;
  flows: { family: 4 | 6; protocol: "udp"; vip: string; port: number };
  to: { address: string; port: number };
}

/**
 * UDP backends that went down between two plans. UDP has no end of connection: a flow pinned to
 * a dead backend would keep sending there until conntrack's timeout, so its entries are deleted
 * and the client's next datagram is balanced again. Pure.
 */
export function udpBackendsGoneDown(prev: ServicesPlan | null, next: ServicesPlan | null): PinnedFlows[] {
  const out: PinnedFlows[] = [];
  const was = prev?.services ?? [];
  let byName: Map<string, PlannedService> | undefined;
  const previousOf = (name: string, i: number) => {
    if (was[i]?.name === name) return was[i];
    byName ??= new Map(was.map((p) => [p.name, p]));
    return byName.get(name);
  };
  const services = next?.services ?? [];
  for (let i = 0; i < services.length; i++) {
    const s = services[i] as PlannedService;
    if (s.protocol !== "udp") continue;
    const p = previousOf(s.name, i);
    // The very same plan (the planner reuses an unchanged service's): nothing went down.
    if (p === s) continue;
    const before = new Map(p?.backends.map((b) => [b.key, b.state]));
    for (const b of s.backends) {
      if (b.state !== "down" || before.get(b.key) === "down") continue;
      out.push({
        service: s.name,
        backend: b.key,
        flows: { family: s.family, protocol: "udp", vip: s.vip.text, port: s.port },
        to: { address: b.addr.text, port: b.port },
      });
    }
  }
  return out;
}
