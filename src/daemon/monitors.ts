import type { BackendConfig, Config, ServiceConfig, UplinkConfig } from "../config/schema.ts";
import type {
  BackendMonitor,
  BackendObservation,
  PassiveCheck,
  PassiveOutcome,
  UplinkMonitor,
  UplinkObservation,
} from "../health/types.ts";
import type { SpawnLines } from "../health/probe-process.ts";
import type { FlowMonitor } from "../health/flow-monitor.ts";
import type { Element } from "../nft/model.ts";
import type { Log } from "./log.ts";
import type { ClusterView } from "./model.ts";

export interface UplinkMonitorContext {
  name: string;
  /** Position in the config: the uplink's mark and table follow from it. */
  index: number;
  uplink: UplinkConfig;
  config: Config;
  log: Log;
}

export interface BackendMonitorContext {
  service: string;
  svc: ServiceConfig;
  backend: BackendConfig;
  config: Config;
  log: Log;
}

/** A cluster agent as the daemon sees it: lifecycle, a snapshot, and `change` when ownership moves. */
export interface ClusterPart {
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
  snapshot(): ClusterView;
  on(event: "change", listener: (snapshot: ClusterView) => void): unknown;
  /** The owned buckets as set elements, with what is left of their fences, for a full replace. */
  ownedElements?(): Element[];
}

/** What a cluster agent hosted by the daemon may ask of it. */
export interface ClusterDaemonSide {
  /** Run `fn` with no reconcile in progress or starting meanwhile. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** The config the daemon runs now. */
  config(): Config;
  /** Switch to a config pushed through the cluster (validated); throws when it cannot be applied. */
  adopt(config: Config): Promise<void>;
}

/**
 * How the daemon gets its health sources. Injected, so tests use fakes; a missing factory means
 * nothing watches that kind of thing and it is assumed healthy (and reported as not probed).
 */
export interface MonitorFactories {
  uplink?: (ctx: UplinkMonitorContext) => UplinkMonitor;
  backend?: (ctx: BackendMonitorContext) => BackendMonitor;
  cluster?: (ctx: { config: Config; log: Log; daemon: ClusterDaemonSide }) => ClusterPart;
  /** The services' live connections (conntrack events): counts for least-conn and status, passive health. */
  flows?: () => FlowMonitor;
  /** How conntrack's events are read for the uplinks' passive health; none: passive health is off. */
  uplinkEvents?: SpawnLines;
  /** Shared resources (a link watcher): started before the first monitor, stopped after the last. */
  start?: () => Promise<void>;
  stop?: () => Promise<void>;
}

export interface MonitorHandlers {
  uplinkChange(obs: UplinkObservation): void;
  uplinkRound(obs: UplinkObservation): void;
  /** The uplink's addresses or learned gateways changed: re-plan (snat, from-rules, routes). */
  uplinkLink(obs: UplinkObservation): void;
  /** Passive health: a suspicion being re-probed, confirmed or cleared by the uplink's monitor. */
  uplinkPassive?(o: PassiveOutcome): void;
  backendChange(obs: BackendObservation): void;
  clusterChange(snapshot: ClusterView): void;
}

interface Entry<M> {
  key: string;
  monitor: M;
  started: boolean;
}

/**
 * The running monitors of one config. On reload only monitors whose settings changed are
 * replaced, so an unchanged uplink keeps its state, history and hysteresis.
 */
export class MonitorSet {
  private readonly uplinks = new Map<string, Entry<UplinkMonitor>>();
  private readonly backends = new Map<string, Entry<BackendMonitor>>();
  private cluster: Entry<ClusterPart> | null = null;
  private sharedStarted = false;

  constructor(
    private readonly factories: MonitorFactories,
    private readonly handlers: MonitorHandlers,
    private readonly log: Log,
    private readonly daemonSide?: ClusterDaemonSide,
  ) {}

  /**
   * Create monitors for `c` (replacing changed ones, stopping vanished ones), not started yet.
   * Returns the initial snapshots of the new monitors. A backend `paused` (in maint) has none.
   */
  async update(
    c: Config,
    paused: (service: string, backend: string) => boolean = () => false,
  ): Promise<{ uplinks: UplinkObservation[]; backends: BackendObservation[] }> {
    const fresh = { uplinks: [] as UplinkObservation[], backends: [] as BackendObservation[] };
    const stops: Promise<void>[] = [];

    const wantUplinks = new Map<string, [string, UplinkMonitorContext]>();
    Object.entries(c.uplinks ?? {}).forEach(([name, uplink], index) => {
      const key = JSON.stringify([index, uplink, c.mark_mask, c.table_base, c.rule_priority_base]);
      wantUplinks.set(name, [key, { name, index, uplink, config: c, log: this.log }]);
    });
    for (const [name, e] of this.uplinks) {
      if (wantUplinks.get(name)?.[0] === e.key) continue;
      stops.push(e.monitor.stop());
      this.uplinks.delete(name);
    }
    const mkUplink = this.factories.uplink;
    if (mkUplink) {
      for (const [name, [key, ctx]] of wantUplinks) {
        if (this.uplinks.has(name)) continue;
        const monitor = mkUplink(ctx);
        monitor.on("change", (o) => this.handlers.uplinkChange(o));
        monitor.on("round", (o) => this.handlers.uplinkRound(o));
        monitor.on("link", (o) => this.handlers.uplinkLink(o));
        monitor.on("passive", (o) => this.handlers.uplinkPassive?.(o));
        this.uplinks.set(name, { key, monitor, started: false });
        fresh.uplinks.push(monitor.snapshot());
      }
    }

    const wantBackends = new Map<string, [string, BackendMonitorContext]>();
    for (const [service, svc] of Object.entries(c.services ?? {})) {
      for (const backend of svc.backends) {
        if (paused(service, backend.address)) continue;
        const key = JSON.stringify([svc.listen, svc.protocol, svc.check, backend.address]);
        wantBackends.set(`${service}\0${backend.address}`, [
          key,
          { service, svc, backend, config: c, log: this.log },
        ]);
      }
    }
    for (const [id, e] of this.backends) {
      if (wantBackends.get(id)?.[0] === e.key) continue;
      stops.push(e.monitor.stop());
      this.backends.delete(id);
    }
    const mkBackend = this.factories.backend;
    if (mkBackend) {
      for (const [id, [key, ctx]] of wantBackends) {
        if (this.backends.has(id)) continue;
        const monitor = mkBackend(ctx);
        monitor.on("change", (o) => this.handlers.backendChange(o));
        this.backends.set(id, { key, monitor, started: false });
        fresh.backends.push(monitor.snapshot());
      }
    }

    // Only the cluster's identity restarts the agent; it follows other changes (a pushed config,
    // a reload) itself, keeping its lease and buckets.
    const cl = c.cluster;
    // The agent reads its identity, etcd endpoints, credentials and keys when it starts: a reload
    // that changes any of them starts a new agent (a pushed config cannot: they are node-local).
    const clusterKey = cl
      ? JSON.stringify([
          cl.name,
          cl.node,
          cl.buckets,
          cl.hash,
          cl.etcd,
          cl.etcd_tls,
          cl.etcd_auth,
          cl.key_file,
          cl.push_public_key,
        ])
      : null;
    if (this.cluster && this.cluster.key !== clusterKey) {
      stops.push(Promise.resolve(this.cluster.monitor.stop()));
      this.cluster = null;
    }
    const mkCluster = this.factories.cluster;
    if (!this.cluster && clusterKey && mkCluster && this.daemonSide) {
      const monitor = mkCluster({ config: c, log: this.log, daemon: this.daemonSide });
      monitor.on("change", (snapshot) => this.handlers.clusterChange(snapshot));
      this.cluster = { key: clusterKey, monitor, started: false };
    }

    await Promise.all(stops);
    return fresh;
  }

  /** Start every monitor not started yet. */
  async start(): Promise<void> {
    if (!this.sharedStarted) {
      this.sharedStarted = true;
      await this.factories.start?.();
    }
    for (const e of [...this.uplinks.values(), ...this.backends.values()]) {
      if (e.started) continue;
      e.monitor.start();
      e.started = true;
    }
    if (this.cluster && !this.cluster.started) {
      this.cluster.started = true;
      await this.cluster.monitor.start();
    }
  }

  /** Passive health: a backend down now; its checks bring it back. False when nothing checks it (maint). */
  markBackendDown(service: string, backend: string, reason: string): boolean {
    const m = this.backends.get(`${service}\0${backend}`)?.monitor;
    if (!m?.markDown) return false;
    m.markDown(reason);
    return true;
  }

  /** Passive health suspects an uplink: its monitor re-probes it. False when it cannot. */
  passiveSuspect(uplink: string, check: PassiveCheck): boolean {
    return this.uplinks.get(uplink)?.monitor.passiveSuspect?.(check) ?? false;
  }

  isProbed(uplink: string): boolean {
    return this.uplinks.has(uplink);
  }

  /** The elements a full replace must write in the cluster's owned set (none without a cluster). */
  clusterOwnedElements(): Element[] {
    return this.cluster?.monitor.ownedElements?.() ?? [];
  }

  clusterSnapshot(): ClusterView | null {
    return this.cluster ? this.cluster.monitor.snapshot() : null;
  }

  async stopAll(): Promise<void> {
    const all = [
      ...[...this.uplinks.values()].map((e) => e.monitor.stop()),
      ...[...this.backends.values()].map((e) => e.monitor.stop()),
      ...(this.cluster ? [Promise.resolve(this.cluster.monitor.stop())] : []),
    ];
    this.uplinks.clear();
    this.backends.clear();
    this.cluster = null;
    await Promise.allSettled(all);
    if (this.sharedStarted) await this.factories.stop?.().catch(() => undefined);
    this.sharedStarted = false;
  }
}
