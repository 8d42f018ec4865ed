import type { Config, ServiceConfig } from "../config/schema.ts";
import type { BackendObservation, UplinkObservation } from "../health/types.ts";
import { formatHostPort, parseAddr, parseHostPort } from "../net/ip.ts";
import type { HealthView } from "../plan/desired.ts";
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
  for (const [svc, s] of serviceEntries(c)) {
    const open = s.scheduler === "least-conn" ? connections(svc) : null;
    if (!memo || open) {
      view.services[svc] = serviceRecord(s, backends.get(svc), svc, o, open);
      continue;
    }
    // Unchanged inputs hand back the same record: the planner then skips the service by identity.
    const key = overridesKey(svc, o);
    const version = memo.version(svc);
    const hit = memo.records.get(s);
    if (hit && hit.name === svc && hit.version === version && hit.overrides === key) {
      if (view.services[svc] !== hit.record) view.services[svc] = hit.record;
    } else {
      const record = serviceRecord(s, backends.get(svc), svc, o, null);
      memo.records.set(s, { name: svc, version, overrides: key, record });
      view.services[svc] = record;
    }
  }
  return view;
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
  private kept: { config: Config; services: HealthView["services"] } | null = null;

  /** The services container for this config object: the same one while the config is (its keys are the config's services). */
  container(c: Config): HealthView["services"] {
    if (this.kept?.config !== c) this.kept = { config: c, services: {} };
    return this.kept.services;
  }

  version(svc: string): number {
    return this.versions.get(svc) ?? 0;
  }

  /** A service's observations changed in a way its health record shows (a backend's state). */
  touch(svc: string): void {
    this.versions.set(svc, this.version(svc) + 1);
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
