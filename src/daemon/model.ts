import { createHash } from "node:crypto";
import type { Config } from "../config/schema.ts";
import type { LoadedConfig } from "../config/load.ts";
import type { BackendObservation, UplinkObservation } from "../health/types.ts";
import type { Desired } from "../plan/desired.ts";
import { familyProblem } from "../plan/families.ts";
import type { PlannedUplink } from "../plan/types.ts";
import { formatHostPort, parseHostPort } from "../net/ip.ts";
import { connCounter } from "../nft/names.ts";
import { autoLevel } from "./auto-weights.ts";
import { steerWeights } from "../plan/steer-weights.ts";
import { loadStatus, type LoadView } from "./overflow.ts";
import {
  backendState,
  buildHealthView,
  emptyOverrides,
  HealthMemo,
  probedDownFamilies,
  uplinkState,
  type Overrides,
  type UplinkState,
} from "./health-view.ts";
import type { ReconcileInput } from "./reconciler.ts";
import { sharesOf } from "./reconciler.ts";
import type { ClusterStatus, FamilyStatus, StatusJson } from "./status.ts";
import { backendExtras, serviceExtras } from "./status-service.ts";

export type Counters = Map<string, { packets: number; bytes: number }>;

/** What the cluster agent reports (its snapshot is the status API's `cluster` object as is). */
export type ClusterView = ClusterStatus;

/**
 * The daemon's memory: the running config, the latest observation of every monitor, and the
 * API's overrides. No I/O; everything the reconcile loop and the API read comes from here.
 */
export class DaemonModel {
  loaded: LoadedConfig;
  version: string;
  readonly uplinkObs = new Map<string, UplinkObservation>();
  readonly backendObs = new Map<string, Map<string, BackendObservation>>();
  readonly overrides: Overrides = emptyOverrides();
  readonly autoLevels = new Map<string, number>();
  /** Uplinks a monitor watches; the others are assumed up. */
  readonly probed = new Set<string>();
  cluster: ClusterView | null = null;
  reloadError: string | null = null;
  /** Connections open now per backend of a service (the daemon's live flows), for least-conn. */
  connections: (service: string) => ReadonlyMap<string, number> | null = () => null;
  /** Overflow's measured load (src/daemon/overflow.ts): uplinks over their threshold, and each one's view. */
  spilling: () => ReadonlySet<string> = () => new Set();
  loadView: (uplink: string) => LoadView | null = () => null;
  /** Why the last change to the kernel failed (the old data plane serves, a retry is due); null once one succeeds. */
  applyError: string | null = null;
  readonly startedAt = new Date();
  /** Health records of services whose inputs did not change (src/daemon/health-view.ts). */
  private healthMemo = new HealthMemo();

  constructor(loaded: LoadedConfig) {
    this.loaded = loaded;
    this.version = versionOf(loaded.text);
  }

  get config(): Config {
    return this.loaded.config;
  }

  /** Take a new config; forget observations and overrides of names it no longer has. */
  setConfig(loaded: LoadedConfig): void {
    this.loaded = loaded;
    this.version = versionOf(loaded.text);
    this.healthMemo = new HealthMemo();
    const c = loaded.config;
    const uplinks = new Set(Object.keys(c.uplinks ?? {}));
    for (const m of [this.uplinkObs, this.autoLevels])
      for (const n of m.keys()) if (!uplinks.has(n)) m.delete(n);
    for (const n of this.overrides.disabledUplinks)
      if (!uplinks.has(n)) this.overrides.disabledUplinks.delete(n);
    for (const n of this.probed) if (!uplinks.has(n)) this.probed.delete(n);
    const o = this.overrides;
    for (const [svc, set] of [...o.drained, ...o.maint, ...o.weights, ...this.backendObs]) {
      const backends = new Set(c.services?.[svc]?.backends.map((b) => b.address) ?? []);
      for (const b of set.keys()) if (!backends.has(b)) set.delete(b);
    }
    if (!c.cluster) this.cluster = null;
  }

  /** Overrides kept from an earlier run, for the names this config still has. */
  restoreOverrides(saved: Overrides): void {
    const c = this.config;
    const o = this.overrides;
    for (const n of saved.disabledUplinks) if (c.uplinks?.[n]) o.disabledUplinks.add(n);
    const backendsOf = (svc: string) =>
      new Set(Object.hasOwn(c.services ?? {}, svc) ? c.services?.[svc]?.backends.map((b) => b.address) : []);
    for (const [from, to] of [
      [saved.drained, o.drained],
      [saved.maint, o.maint],
    ] as const)
      for (const [svc, set] of from) {
        const known = backendsOf(svc);
        const keep = new Set([...set].filter((b) => known.has(b)));
        if (keep.size) to.set(svc, keep);
      }
    for (const [svc, m] of saved.weights) {
      const known = backendsOf(svc);
      const keep = new Map([...m].filter(([b]) => known.has(b)));
      if (keep.size) o.weights.set(svc, keep);
    }
  }

  /** Why a backend is in its state: an operator's action wins over the last check. */
  backendReason(service: string, address: string, observed: string): string {
    const o = this.overrides;
    if (o.maint.get(service)?.has(address)) return "maint through the API (checks stopped)";
    if (o.drained.get(service)?.has(address)) return "drained through the API";
    const w = o.weights.get(service)?.get(address);
    if (w !== undefined)
      return observed ? `${observed}; weight ${w} set through the API` : `weight ${w} set through the API`;
    return observed;
  }

  uplinkState(name: string): UplinkState {
    return uplinkState(name, this.uplinkObs.get(name), this.overrides);
  }

  /** Record a round; true when `weights: auto` moved the uplink's level (the split must change). */
  observeRound(obs: UplinkObservation): boolean {
    this.uplinkObs.set(obs.name, obs);
    if (this.config.balance.weights !== "auto") return false;
    const before = this.autoLevels.get(obs.name);
    const after = autoLevel(before, obs.quality);
    this.autoLevels.set(obs.name, after);
    return before !== undefined && before !== after;
  }

  observeBackend(obs: BackendObservation): void {
    let m = this.backendObs.get(obs.service);
    if (!m) this.backendObs.set(obs.service, (m = new Map()));
    if (m.get(obs.backend)?.state !== obs.state) this.healthMemo.touch(obs.service);
    m.set(obs.backend, obs);
  }

  input(): ReconcileInput {
    const c = this.config;
    const probeDown = new Set(
      Object.keys(c.uplinks ?? {}).filter((n) => this.uplinkObs.get(n)?.state === "down"),
    );
    const probeDownFamilies = new Set(
      Object.keys(c.uplinks ?? {}).flatMap((n) =>
        probedDownFamilies(this.uplinkObs.get(n)).map((f) => `${n}/${f}`),
      ),
    );
    const health = buildHealthView(
      c,
      this.uplinkObs,
      this.backendObs,
      this.overrides,
      this.autoLevels,
      this.connections,
      this.healthMemo,
    );
    // metered and overflow: effective weights over the health above (0 keeps an uplink out of the balance).
    health.uplinks = steerWeights(c, health.uplinks, this.spilling());
    return { config: c, health, probeDown, probeDownFamilies };
  }

  status(
    applied: { desired: Desired; at: Date } | null,
    keeping: boolean,
    counters: Counters,
    backendCounter: (service: string, backend: string) => string | null,
    /** service → backend (canonical ADDRESS:PORT) → connections open now (conntrack); null: unknown. */
    active: ActiveConnections | null = null,
  ): StatusJson {
    const c = this.config;
    const shares = sharesOf(applied?.desired);
    const famShares = { 4: sharesOf(applied?.desired, 4), 6: sharesOf(applied?.desired, 6) };
    const planned = new Map(applied?.desired.uplinks?.uplinks.map((u) => [u.name, u]));
    const plannedServices = new Map(applied?.desired.services?.services.map((p) => [p.name, p]));
    const health = this.input().health;
    return {
      uplinks: Object.entries(c.uplinks ?? {}).map(([name, u]) => {
        const obs = this.uplinkObs.get(name);
        const p = planned.get(name);
        const reason = this.overrides.disabledUplinks.has(name)
          ? "disabled through the API"
          : (obs?.reason ?? (this.probed.has(name) ? "" : "not probed: assumed up"));
        return {
          name,
          interface: u.interface,
          state: this.uplinkState(name),
          reason,
          since: obs ? new Date(obs.since).toISOString() : null,
          weight: u.weight,
          effective_weight: p?.live ? p.weight : 0,
          share: shares.get(name) ?? 0,
          rtt_ms: obs?.rttMs ?? null,
          jitter_ms: obs?.jitterMs ?? null,
          loss: obs?.loss ?? 0,
          connections: counters.get(connCounter(name))?.packets ?? null,
          probed: this.probed.has(name),
          ...(p
            ? {
                families: familiesOf(
                  p,
                  this.uplinkState(name),
                  reason,
                  obs,
                  (f) => famShares[f].get(name) ?? 0,
                ),
              }
            : {}),
          probe_error: obs?.probeError ?? null,
          ...loadStatus(c, name, this.loadView(name)),
        };
      }),
      services: Object.entries(c.services ?? {}).map(([name, s]) => ({
        name,
        listen: s.listen,
        protocol: s.protocol,
        ...serviceExtras(s, plannedServices.get(name)),
        backends: s.backends.map((b, i) => {
          const open = active?.get(name);
          const obs = this.backendObs.get(name)?.get(b.address);
          const counter = backendCounter(name, b.address);
          const state = backendState(name, b.address, b.weight, obs, this.overrides);
          return {
            address: b.address,
            state,
            weight: health.services[name]?.[b.address]?.weight ?? b.weight,
            configured_weight: b.weight,
            connections: open ? (open.get(canonicalBackend(b.address)) ?? 0) : null,
            // Elements of dynamic counter sets (src/plan/nft-services.ts): none until its first packet.
            connections_total: counter ? (counters.get(counter)?.packets ?? 0) : null,
            // Bytes of DNATed packets forwarded to/from it.
            bytes_to_backend: counter ? (counters.get(`${counter}_to`)?.bytes ?? 0) : null,
            bytes_from_backend: counter ? (counters.get(`${counter}_from`)?.bytes ?? 0) : null,
            reason: this.backendReason(name, b.address, obs?.reason ?? ""),
            since: obs ? new Date(obs.since).toISOString() : null,
            ...backendExtras(b, i, plannedServices.get(name)),
          };
        }),
      })),
      cluster: this.cluster,
      applied_at: applied ? applied.at.toISOString() : null,
      config_version: this.version,
      config_file: this.loaded.file,
      started_at: this.startedAt.toISOString(),
      last_reload_error: this.reloadError,
      last_apply_error: this.applyError,
      keeping_last_data_plane: keeping,
    };
  }
}

/** service → backend (canonical ADDRESS:PORT, as conntrack reports it) → connections open now. */
export type ActiveConnections = ReadonlyMap<string, ReadonlyMap<string, number>>;

/** `ADDRESS:PORT` as `formatHostPort` writes it (IPv6 compressed, in brackets). */
export function canonicalBackend(address: string): string {
  const hp = parseHostPort(address);
  return "error" in hp ? address : formatHostPort(hp.addr, hp.port);
}

export function versionOf(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 12);
}

/**
 * Each family's state: down with the reason it cannot carry that family; else its own probes'
 * verdict (targets of that family), or the uplink's state when it has no targets of its own.
 */
function familiesOf(
  p: PlannedUplink,
  state: "up" | "down" | "disabled",
  reason: string,
  obs: UplinkObservation | undefined,
  share: (fam: 4 | 6) => number,
): { ipv4: FamilyStatus; ipv6: FamilyStatus } {
  const one = (fam: 4 | 6): FamilyStatus => {
    const problem = familyProblem(p, fam);
    const f = obs?.families?.[fam];
    const figures = {
      probed: f?.probed ?? false,
      since: f ? new Date(f.since).toISOString() : null,
      rtt_ms: f ? f.rttMs : (obs?.rttMs ?? null),
      loss: f ? f.loss : (obs?.loss ?? 0),
      share: share(fam),
    };
    if (problem !== null)
      return { state: state === "disabled" ? state : "down", reason: problem, ...figures };
    if (state === "disabled" || !f?.probed)
      return { state, reason: f ? `${f.reason}; ${reason}` : reason, ...figures };
    return { state: f.state, reason: f.reason, ...figures };
  };
  return { ipv4: one(4), ipv6: one(6) };
}
