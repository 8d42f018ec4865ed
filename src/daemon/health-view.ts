import type { Config, ServiceConfig } from "../config/schema.ts";
import type { BackendObservation, UplinkObservation } from "../health/types.ts";
import { formatHostPort, parseAddr, parseHostPort } from "../net/ip.ts";
import type { HealthView, ServiceChanges } from "../plan/desired.ts";
import type { BackendHealth } from "../plan/types.ts";
import { effectiveWeight } from "./auto-weights.ts";
import { serviceEntries } from "../config/service-entries.ts";

/** What the API changed by hand; survives reloads (and restarts) for names that still exist. */
export interface Overrides {
  disabledUplinks: Set<string>;
  /** service → backend keys (as written in the config) drained by the API. */
  drained: Map<string, Set<string>>;
  /** service → backends in maintenance: no new connections and no health checks (HAProxy's maint). */
  maint: Map<string, Set<string>>;
  /** service → backend → weight set at run time, in place of the configured one. */
  weights: Map<string, Map<string, number>>;
}

export const emptyOverrides = (): Overrides => ({
  disabledUplinks: new Set(),
  drained: new Map(),
  maint: new Map(),
  weights: new Map(),
});

export type UplinkState = "up" | "down" | "disabled";
export type BackendState = "up" | "down" | "draining" | "maint";

/** The weight a backend has now: 0 when drained or in maint, else the runtime weight or the configured one. */
export function backendWeight(svc: string, address: string, configured: number, o: Overrides): number {
  if (o.drained.get(svc)?.has(address) || o.maint.get(svc)?.has(address)) return 0;
  return o.weights.get(svc)?.get(address) ?? configured;
}

/**
 * Monitor observations + API overrides → the planner's HealthView. Pure. An uplink or backend
 * without an observation (no monitor for it) counts as up, as `apply` assumes.
 */
export function buildHealthView(
  c: Config,
  uplinks: ReadonlyMap<string, UplinkObservation>,
  backends: ReadonlyMap<string, ReadonlyMap<string, BackendObservation>>,
  o: Overrides,
  autoLevels: ReadonlyMap<string, number> = new Map(),
  /** Connections open now per backend (canonical ADDRESS:PORT) of a service, for least-conn. */
  connections: (service: string) => ReadonlyMap<string, number> | null = () => null,
  /**
   * Records kept from earlier builds; its owner touches a service whenever one of its backends'
   * observed state changes (src/daemon/model.ts). least-conn services are built every time.
   */
  memo?: HealthMemo,
): HealthView {
  // With a memo the services container is kept and patched: building a 5,000-key object anew was
  // most of a one-backend change's health view (~2.5 ms). Records are never changed in place, so a
  // planner holding an earlier record still sees what it planned from.
  const view: HealthView = { uplinks: {}, services: memo ? memo.container(c) : {} };
  for (const [name, u] of Object.entries(c.uplinks ?? {})) {
    const obs = uplinks.get(name);
    const up = uplinkState(name, obs, o) === "up";
    const level = c.balance.weights === "auto" ? autoLevels.get(name) : undefined;
    view.uplinks[name] = { up, weight: effectiveWeight(u.weight, level) };
    const down = up ? probedDownFamilies(obs) : [];
    if (down.length) view.uplinks[name].downFamilies = down;
  }
  if (!memo) {
    for (const [svc, s] of serviceEntries(c))
      view.services[svc] = serviceRecord(s, backends.get(svc), svc, o, leastConnOpen(s, svc, connections));
    return view;
  }
  // Only the services whose inputs may have changed since the last build of this container are
  // looked at (touched, overridden now or then, least-conn): the others' records stand as they are.
  const candidates = memo.candidates(c, o);
  const changed = new Set<string>();
  const visit = (svc: string, s: ServiceConfig) => {
    const before = view.services[svc];
    const record = memoRecord(svc, s, backends, o, connections, memo);
    if (before !== record) {
      view.services[svc] = record;
      changed.add(svc);
    }
  };
  if (candidates) {
    for (const svc of candidates) {
      const s = Object.hasOwn(c.services ?? {}, svc) ? c.services?.[svc] : undefined;
      if (s) visit(svc, s);
    }
  } else for (const [svc, s] of serviceEntries(c)) visit(svc, s);
  view.changes = memo.built(c, o, candidates ? changed : null);
  return view;
}

function leastConnOpen(
  s: ServiceConfig,
  svc: string,
  connections: (service: string) => ReadonlyMap<string, number> | null,
): ReadonlyMap<string, number> | null {
  return s.scheduler === "least-conn" ? connections(svc) : null;
}

/** A service's record: the kept one while its inputs are the same (the planner then skips it by identity). */
function memoRecord(
  svc: string,
  s: ServiceConfig,
  backends: ReadonlyMap<string, ReadonlyMap<string, BackendObservation>>,
  o: Overrides,
  connections: (service: string) => ReadonlyMap<string, number> | null,
  memo: HealthMemo,
): Record<string, BackendHealth> {
  const open = leastConnOpen(s, svc, connections);
  if (open) return serviceRecord(s, backends.get(svc), svc, o, open);
  const key = overridesKey(svc, o);
  const version = memo.version(svc);
  const hit = memo.records.get(s);
  if (hit && hit.name === svc && hit.version === version && hit.overrides === key) return hit.record;
  const record = serviceRecord(s, backends.get(svc), svc, o, null);
  memo.records.set(s, { name: svc, version, overrides: key, record });
  return record;
}

function serviceRecord(
  s: ServiceConfig,
  obsOf: ReadonlyMap<string, BackendObservation> | undefined,
  svc: string,
  o: Overrides,
  open: ReadonlyMap<string, number> | null,
): Record<string, BackendHealth> {
  const out: Record<string, BackendHealth> = {};
  for (const b of s.backends) {
    const obs = obsOf?.get(b.address);
    // In maint the checks are stopped: the last observation says nothing any more.
    const up = o.maint.get(svc)?.has(b.address) || obs?.state !== "down";
    const h: BackendHealth = { up, weight: backendWeight(svc, b.address, b.weight, o) };
    if (open) h.connections = open.get(canonical(b.address)) ?? 0;
    out[b.address] = h;
  }
  return out;
}

/** A service's overrides as text ("" without any): read fresh on every build, they are changed in place. */
function overridesKey(svc: string, o: Overrides): string {
  if (o.drained.size === 0 && o.maint.size === 0 && o.weights.size === 0) return "";
  const d = o.drained.get(svc);
  const m = o.maint.get(svc);
  const w = o.weights.get(svc);
  if (!d?.size && !m?.size && !w?.size) return "";
  return JSON.stringify([[...(d ?? [])], [...(m ?? [])], [...(w ?? [])]]);
}

/**
 * Each service's health record, kept while its config object, its observations' version and its
 * overrides are the same: at 5,000 services × 50 backends, building every record again costs ~150 ms
 * per change, and hands the planner new objects it must compare backend by backend.
 */
export class HealthMemo {
  readonly records = new WeakMap<
    ServiceConfig,
    { name: string; version: number; overrides: string; record: Record<string, BackendHealth> }
  >();
  private readonly versions = new Map<string, number>();
  private kept: {
    config: Config;
    services: HealthView["services"];
    /** The container was filled by a build (its records stand for every service). */
    built: boolean;
    /** Services with overrides at the last build. */
    overridden: Set<string>;
    /** least-conn services: their counts change without a touch. */
    leastConn: string[];
    changes: ChangeLog;
  } | null = null;
  /** Services touched since the last build. */
  private touched = new Set<string>();

  /** The services container for this config object: the same one while the config is (its keys are the config's services). */
  container(c: Config): HealthView["services"] {
    if (this.kept?.config !== c) {
      const leastConn = serviceEntries(c)
        .filter(([, s]) => s.scheduler === "least-conn")
        .map(([n]) => n);
      this.kept = {
        config: c,
        services: {},
        built: false,
        overridden: new Set(),
        leastConn,
        changes: new ChangeLog(),
      };
    }
    return this.kept.services;
  }

  /**
   * The services whose record may differ from the one the kept container holds: touched since
   * the last build, with overrides now or at the last build, or least-conn. Null when every
   * service must be looked at (the container is new).
   */
  candidates(c: Config, o: Overrides): Set<string> | null {
    const k = this.kept;
    if (!k || k.config !== c || !k.built) return null;
    const out = new Set<string>(this.touched);
    for (const n of k.overridden) out.add(n);
    for (const n of overriddenServices(o)) out.add(n);
    for (const n of k.leastConn) out.add(n);
    return out;
  }

  /** A build of the kept container is over: `changed`, the names whose record it replaced (null: unknown). */
  built(c: Config, o: Overrides, changed: ReadonlySet<string> | null): ServiceChanges {
    const k = this.kept;
    if (!k || k.config !== c) throw new Error("HealthMemo.built without its container");
    k.built = true;
    k.overridden = overriddenServices(o);
    this.touched = new Set();
    return k.changes.next(changed);
  }

  version(svc: string): number {
    return this.versions.get(svc) ?? 0;
  }

  /** A service's observations changed in a way its health record shows (a backend's state). */
  touch(svc: string): void {
    this.versions.set(svc, this.version(svc) + 1);
    this.touched.add(svc);
  }
}

/** Services with any override (drained, maint or a runtime weight). */
function overriddenServices(o: Overrides): Set<string> {
  const out = new Set<string>();
  for (const m of [o.drained, o.maint, o.weights]) for (const [n, x] of m) if (x.size) out.add(n);
  return out;
}

/**
 * Which records each build of one container replaced, for the last LOG_BUILDS builds: the planner
 * re-plans only the services changed since the build its previous plan came from.
 */
const LOG_BUILDS = 64;

class ChangeLog {
  private gen = 0;
  /** gen → names replaced by that build (null: unknown, e.g. the first). */
  private readonly log = new Map<number, ReadonlySet<string> | null>();

  next(changed: ReadonlySet<string> | null): ServiceChanges {
    const gen = ++this.gen;
    this.log.set(gen, changed);
    this.log.delete(gen - LOG_BUILDS);
    return new Changes(this, gen);
  }

  since(from: number, to: number): ReadonlySet<string> | null {
    if (from > to || to - from >= LOG_BUILDS) return null;
    if (from === to) return new Set();
    const out = new Set<string>();
    for (let g = from + 1; g <= to; g++) {
      const names = this.log.get(g);
      if (!names) return null;
      for (const n of names) out.add(n);
    }
    return out;
  }
}

class Changes implements ServiceChanges {
  constructor(
    private readonly log: ChangeLog,
    readonly gen: number,
  ) {}

  since(gen: number): ReadonlySet<string> | null {
    return this.log.since(gen, this.gen);
  }
}

/** Families the probes call down (families probed on their own: src/health/family-monitor.ts). */
export function probedDownFamilies(obs: UplinkObservation | undefined): (4 | 6)[] {
  const f = obs?.families;
  if (!f) return [];
  return ([4, 6] as const).filter((fam) => f[fam].probed && f[fam].state === "down");
}

function canonical(address: string): string {
  const hp = parseHostPort(address);
  return "error" in hp ? address : formatHostPort(hp.addr, hp.port);
}

export function uplinkState(name: string, obs: UplinkObservation | undefined, o: Overrides): UplinkState {
  if (o.disabledUplinks.has(name)) return "disabled";
  return obs?.state === "down" ? "down" : "up";
}

export function backendState(
  svc: string,
  address: string,
  configuredWeight: number,
  obs: BackendObservation | undefined,
  o: Overrides,
): BackendState {
  if (o.maint.get(svc)?.has(address)) return "maint";
  if (obs?.state === "down") return "down";
  return backendWeight(svc, address, configuredWeight, o) === 0 ? "draining" : "up";
}

/**
 * The backend of a service an API caller means: exact text first, then the same address and port
 * written differently (IPv6 forms), then a bare address when only one backend has it.
 */
export function findBackend(c: Config, svc: string, wanted: string): string | null {
  const s = Object.hasOwn(c.services ?? {}, svc) ? c.services?.[svc] : undefined;
  if (!s) return null;
  const exact = s.backends.find((b) => b.address === wanted);
  if (exact) return exact.address;
  const canon = (x: string) => {
    const p = parseHostPort(x);
    return "error" in p ? null : formatHostPort(p.addr, p.port);
  };
  const w = canon(wanted);
  if (w) return s.backends.find((b) => canon(b.address) === w)?.address ?? null;
  const bare = parseAddr(wanted.replace(/^\[|\]$/g, ""));
  if (!bare) return null;
  const byAddr = s.backends.filter((b) => {
    const p = parseHostPort(b.address);
    return !("error" in p) && p.addr.text === bare.text;
  });
  return byAddr.length === 1 ? (byAddr[0]?.address ?? null) : null;
}
