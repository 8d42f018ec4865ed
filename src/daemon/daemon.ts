import type { FastifyInstance } from "fastify";
import { ConfigError } from "../config/issues.ts";
import type { LoadedConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import type { BackendObservation, UplinkObservation } from "../health/types.ts";
import { parseHostPort } from "../net/ip.ts";
import { buildApi, type ActionResult, type ApiDaemon } from "../api/server.ts";
import { Metrics } from "../metrics/registry.ts";
import { backendCounterKey, OWNED_SET, TABLE_REF } from "../nft/names.ts";
import { readLinkBytes, type LinkBytes } from "../system/linkstats.ts";
import { closeNftSession, kernelOps, readNflbCounters, startNftSession } from "./dataplane-ops.ts";
import { EventLog, type NewEvent } from "./events.ts";
import { backendState, findBackend } from "./health-view.ts";
import { HealthBurst } from "./health-burst.ts";
import { LiveFlows } from "./live-flows.ts";
import type { Log } from "./log.ts";
import { DaemonModel, type ActiveConnections, type ClusterView, type Counters } from "./model.ts";
import { MonitorSet, type MonitorFactories } from "./monitors.ts";
import { OnChangeHook, type HookRunner } from "./on-change.ts";
import { loadOverrides, saveOverrides } from "./overrides-store.ts";
import type { ControlDaemon, ReloadOutcome } from "../api/routes-control.ts";
import {
  Reconciler,
  sharesOf,
  type DataplaneOps,
  type ReconcileInput,
  type ReconcileResult,
} from "./reconciler.ts";
import type { StatusJson, UplinkStatus } from "./status.ts";
import { DnsService, type DnsView } from "../dns/service.ts";
import { LinkLoad, type LoadView } from "./overflow.ts";
import { formatBitrate } from "../config/bitrate.ts";
import type { PassiveOutcome } from "../health/types.ts";
import { UplinkPassiveWatch } from "./uplink-passive.ts";
import { FactsCache } from "./facts-cache.ts";
import { spawnLines } from "../health/probe-process.ts";
import { Spawner } from "../system/spawner.ts";
import { useSpawner } from "../system/exec.ts";

export const DEFAULT_API = "127.0.0.1:9110";
/** A periodic run re-reads addresses and re-installs the table if someone removed it. */
const RESYNC_MS = 30_000;
/**
 * A daemon this big starts nft and ip through the spawner: fork() of a 600 MB process costs 5–18
 * ms per command, of a 250 MB one ~3–5, of the usual 50–80 MB one 1–2 (not worth a process).
 */
const SPAWNER_MIN_RSS = 256 << 20;
/** Status requests within this window share one read of the kernel counters. */
const COUNTER_CACHE_MS = 500;

export interface DaemonOptions {
  configFile: string;
  /** `--api HOST:PORT`; overrides `api.listen`. */
  api?: string;
  /** false: no HTTP server (tests drive the ApiDaemon methods directly). */
  serveApi?: boolean;
  factories: MonitorFactories;
  /** Load and validate a config file; throws ConfigError. */
  load: (file: string) => Promise<LoadedConfig>;
  log: Log;
  ops?: DataplaneOps;
  readCounters?: () => Promise<Counters>;
  readLinkBytes?: (iface: string) => Promise<LinkBytes | null>;
  /** The key of a backend's counters in `readCounters` (default: its element counters' key). */
  backendCounter?: (service: string, backend: string) => string | null;
  hookRunner?: HookRunner;
  resyncMs?: number;
  /** Where the operator's overrides are kept across restarts; none: not kept. */
  overridesFile?: string;
}

/**
 * `nflb run`: applies the config, keeps the data plane in line with what the monitors observe,
 * serves the API. Owns the lifecycle (start, reload, stop); the kernel is changed only by the
 * Reconciler.
 */
export class Daemon implements ApiDaemon, ControlDaemon {
  readonly events = new EventLog();
  readonly metricsRegistry: Metrics;
  readonly reconciler: Reconciler;
  private readonly monitors: MonitorSet;
  private readonly hook: OnChangeHook;
  private readonly log: Log;
  private api: FastifyInstance | null = null;
  private apiAddress: string | null = null;
  private resync: NodeJS.Timeout | undefined;
  private reloading: Promise<unknown> = Promise.resolve();
  private counterCache: { at: number; value: Promise<Counters> } | null = null;
  private readonly flows: LiveFlows;
  private readonly linkLoad: LinkLoad;
  private stopped = false;
  private readonly dnsService: DnsService;
  private dnsSets: { model: unknown; names: ReadonlySet<string> } = { model: null, names: new Set() };
  /** Interfaces read once and reused by services-only changes (null: `opts.ops` given, every run reads). */
  private readonly facts: FactsCache | null;
  /** Starts nft and ip for a daemon grown big (src/system/spawner.ts); null: `opts.ops` given. */
  private readonly spawner: Spawner | null;
  /** The uplinks' passive health (conntrack events); null when the factories give no way to read them. */
  private readonly passive: UplinkPassiveWatch | null;
  /** Backend transitions: bounded log lines, one reconcile per burst. */
  private readonly healthBurst: HealthBurst;

  private constructor(
    private readonly opts: DaemonOptions,
    readonly model: DaemonModel,
  ) {
    this.log = opts.log;
    // The real host: interface reads reused across services-only changes while `ip monitor`
    // sees nothing move (tests that inject their own ops read every time, as before).
    const facts = opts.ops
      ? null
      : new FactsCache((o) => kernelOps.readFacts(o), {
          spawn: spawnLines,
          log: (msg) => this.log.warn({ reason: "facts cache" }, msg),
        });
    this.facts = facts;
    this.spawner = opts.ops
      ? null
      : new Spawner({
          minRssBytes: SPAWNER_MIN_RSS,
          log: (msg) => this.log.warn({ reason: "spawner" }, msg),
        });
    const ops: DataplaneOps = opts.ops ?? {
      ...kernelOps,
      readFacts: (o) => (facts as FactsCache).get(o ?? { gateways: true }),
    };
    this.metricsRegistry = new Metrics({
      uplinks: () => this.uplinkMetrics(),
      backends: () => this.backendMetrics(),
      cluster: () =>
        this.model.cluster
          ? { node: this.model.cluster.node, bucketsOwned: this.model.cluster.buckets_owned }
          : null,
      readCounters: () => this.counters(),
      readLinkBytes: opts.readLinkBytes ?? readLinkBytes,
      activeConnections: () => this.activeConnections(),
    });
    this.reconciler = new Reconciler(() => this.reconcileInput(), ops, {
      log: this.log,
      onApply: (kind, seconds) => this.metricsRegistry.applySeconds.observe({ kind }, seconds),
      onOutcome: (error) => (this.model.applyError = error),
      onKeeping: (keeping, reasons) =>
        this.publish({
          kind: "daemon",
          name: "uplinks",
          state: keeping ? "all-down" : "resumed",
          reason: keeping
            ? `all uplinks down; keeping the last data plane (${reasons.join("; ")})`
            : `an uplink is live again (${reasons.join("; ")})`,
        }),
    });
    this.monitors = new MonitorSet(
      opts.factories,
      {
        uplinkChange: (o) => this.onUplinkChange(o),
        uplinkRound: (o) => this.onUplinkRound(o),
        uplinkPassive: (o) => this.onUplinkPassive(o),
        uplinkLink: (o) => {
          if (this.stopped || !this.model.config.uplinks?.[o.name]) return;
          void this.reconciler.reconcile(`uplink ${o.name}: addresses or gateway changed`);
        },
        backendChange: (o) => this.onBackendChange(o),
        clusterChange: (snapshot) => this.onClusterChange(snapshot),
      },
      this.log,
      {
        exclusive: (fn) => this.reconciler.exclusive(fn),
        config: () => this.model.config,
        adopt: (config) => this.adoptPushed(config),
      },
    );
    this.hook = new OnChangeHook(model.config.on_change, this.log, opts.hookRunner);
    this.healthBurst = new HealthBurst({
      log: this.log,
      reconcile: (reason) => void this.reconciler.reconcile(reason, { servicesOnly: true }),
    });
    this.dnsService = new DnsService(
      {
        exclusive: (fn) => this.reconciler.exclusive(fn),
        applyNft: (script) => ops.applyNft(script),
        appliedSets: () => this.appliedDomainSets(),
        log: this.log,
      },
      this.metricsRegistry.registry,
    );
    this.flows = new LiveFlows(opts.factories.flows, {
      log: this.log,
      leastConnChanged: () =>
        void this.reconciler.reconcile("least-conn: connection counts changed", {
          quiet: true,
          servicesOnly: true,
        }),
      passiveDown: (v) => this.monitors.markBackendDown(v.service, v.backend, v.reason),
    });
    model.connections = (service) => this.flows.connections(service);
    this.linkLoad = new LinkLoad({
      read: opts.readLinkBytes ?? readLinkBytes,
      changed: (name, spilling, view) => this.onSpill(name, spilling, view),
    });
    model.spilling = () => this.linkLoad.spilling();
    model.loadView = (name) => this.linkLoad.view(name);
    const uplinkEvents = opts.factories.uplinkEvents;
    this.passive = uplinkEvents
      ? new UplinkPassiveWatch(
          { log: this.log, suspect: (name, check) => this.monitors.passiveSuspect(name, check) },
          { spawn: uplinkEvents, registry: this.metricsRegistry.registry },
        )
      : null;
    this.metricsRegistry.declareUplinks(Object.keys(model.config.uplinks ?? {}));
  }

  /** Load the config (throws ConfigError when it is invalid); nothing is touched yet. */
  static async create(opts: DaemonOptions): Promise<Daemon> {
    return new Daemon(opts, new DaemonModel(await opts.load(opts.configFile)));
  }

  /** The address the API listens on, once started. */
  get address(): string | null {
    return this.apiAddress;
  }

  /**
   * Bind the API (so a taken port fails before the kernel is touched), install the whole data
   * plane in one transaction (adopting whatever an earlier run left), then start the monitors.
   */
  async start(): Promise<void> {
    if (this.model.config.cluster && !this.opts.factories.cluster)
      this.log.warn(
        { reason: "no cluster agent in this daemon" },
        "cluster: the filter is installed but accepts no bucket (no agent to coordinate it)",
      );
    if (this.opts.serveApi !== false) await this.listen();
    if (this.opts.overridesFile) this.model.restoreOverrides(await loadOverrides(this.opts.overridesFile));
    await this.adoptMonitors();
    try {
      await this.dnsService.configure(this.model.config, true);
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.flows.configure(this.model.config);
    if (this.spawner) {
      useSpawner(this.spawner);
      // Before the first plan makes the daemon big (the spawner exists for the same reason).
      startNftSession();
    }
    this.facts?.start();
    const r = await this.reconciler.reconcile("start", { force: true });
    if (r.action === "failed") {
      await this.stop();
      throw r.error ?? new Error("the first apply failed");
    }
    this.dnsService.applied(this.appliedDomainSets());
    this.configurePassive();
    await this.monitors.start();
    this.linkLoad.configure(this.model.config);
    this.passive?.start();
    this.refreshCluster();
    this.resync = setInterval(
      () => void this.reconciler.reconcile("periodic check", { verify: true }),
      this.opts.resyncMs ?? RESYNC_MS,
    );
    this.resync.unref();
    this.log.info(
      {
        config: this.model.loaded.file,
        config_version: this.model.version,
        api: this.apiAddress,
        uplinks: Object.keys(this.model.config.uplinks ?? {}),
        reason: "start",
      },
      "nflb running",
    );
  }

  /** SIGHUP: a valid config replaces the running one; an invalid one is refused and changes nothing. */
  async reload(): Promise<{ ok: boolean; error?: string }> {
    const r = await this.reloadConfig();
    return r.ok ? { ok: true } : { ok: false, error: r.error };
  }

  /** The same reload, answered in full (`POST /api/v1/reload`): resolves once the kernel has it. */
  reloadConfig(): Promise<ReloadOutcome> {
    const next = this.reloading.then(() => this.reloadNow());
    this.reloading = next.catch(() => undefined);
    return next;
  }

  private async reloadNow(): Promise<ReloadOutcome> {
    if (this.stopped) return { ok: false, kind: "stopping", error: "stopping" };
    let loaded: LoadedConfig;
    try {
      loaded = await this.opts.load(this.model.loaded.file);
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      this.model.reloadError = error;
      this.log.error(
        { reason: "invalid config", errors: e instanceof ConfigError ? e.issues : undefined, err: error },
        "reload refused; the running config keeps serving",
      );
      this.publish({ kind: "daemon", name: "config", state: "reload-refused", reason: error });
      if (e instanceof ConfigError)
        return { ok: false, kind: "config", error, file: e.file, issues: e.issues };
      return { ok: false, kind: "config", error };
    }
    const previous = this.model.loaded;
    this.model.reloadError = null;
    const r = await this.switchConfig(loaded, "reload");
    if (r.action === "failed") {
      // Valid but not applicable (nft refused it): as refused as a config with a YAML error.
      const error = `the new config failed to apply: ${r.error?.message ?? "unknown error"}`;
      await this.switchConfig(previous, "reload failed; back to the running config");
      this.model.reloadError = error;
      this.log.error(
        { reason: "apply failed", err: error },
        "reload refused; the running config keeps serving",
      );
      this.publish({ kind: "daemon", name: "config", state: "reload-refused", reason: error });
      return { ok: false, kind: "apply", error };
    }
    if (!this.opts.api && loaded.config.api.listen !== previous.config.api.listen)
      this.log.warn({ listen: loaded.config.api.listen }, "api.listen changes take effect at the next start");
    this.publish({
      kind: "daemon",
      name: "config",
      state: "reloaded",
      reason: `config ${this.model.version} loaded`,
    });
    this.log.info(
      { config_version: this.model.version, action: r.action, reason: "reload" },
      "config reloaded",
    );
    return { ok: true, config_version: this.model.version, applied: r.action };
  }

  private async switchConfig(loaded: LoadedConfig, reason: string): Promise<ReconcileResult> {
    this.model.setConfig(loaded);
    this.hook.setCommand(loaded.config.on_change);
    this.metricsRegistry.declareUplinks(Object.keys(loaded.config.uplinks ?? {}));
    await this.adoptMonitors();
    await this.dnsService.configure(loaded.config, false);
    this.flows.configure(loaded.config);
    // Not forced: the reconciler applies the diff from the table it holds (sticky maps, counters
    // and rotation positions stay), and replaces the table only when its shape cannot change in place.
    const r = await this.reconciler.reconcile(reason);
    this.dnsService.applied(this.appliedDomainSets());
    this.configurePassive();
    await this.monitors.start();
    this.linkLoad.configure(loaded.config);
    this.refreshCluster();
    return r;
  }

  private reconcileInput(): ReconcileInput {
    return {
      ...this.model.input(),
      external: () => [
        { table: TABLE_REF, set: OWNED_SET, elements: this.monitors.clusterOwnedElements() },
        ...this.dnsService.external(),
      ],
    };
  }

  /** The domain rules' DNS sets in the model the kernel holds (the forwarder writes only to those). */
  private appliedDomainSets(): ReadonlySet<string> {
    const model = this.reconciler.last?.model ?? null;
    if (model !== this.dnsSets.model) {
      const t = model?.tables.find((x) => `${x.family} ${x.name}` === TABLE_REF);
      const names = new Set<string>();
      for (const o of t?.objects ?? [])
        if (o.kind === "set" && o.owner === "external" && o.name.startsWith("dom_")) names.add(o.name);
      this.dnsSets = { model, names };
    }
    return this.dnsSets.names;
  }

  /**
   * A config pushed through the cluster, validated by the agent: run it like a reload (the same
   * queue), and throw when it cannot be applied so that the agent reports it refused.
   */
  private adoptPushed(config: Config): Promise<void> {
    const next = this.reloading.then(async () => {
      if (this.stopped) throw new Error("stopping");
      const previous = this.model.loaded;
      const text = JSON.stringify(config);
      const r = await this.switchConfig(
        { config, file: previous.file, text, locate: (issues) => issues },
        "cluster push",
      );
      if (r.action === "failed") {
        await this.switchConfig(previous, "pushed config failed; back to the running config");
        throw new Error(`the pushed config failed to apply: ${r.error?.message ?? "unknown error"}`);
      }
      this.publish({ kind: "daemon", name: "config", state: "reloaded", reason: "cluster push" });
      this.log.info({ config_version: this.model.version, reason: "cluster push" }, "config adopted");
    });
    this.reloading = next.catch(() => undefined);
    return next;
  }

  /** SIGTERM: stop probing and serving; the data plane stays exactly as it is (fail-static). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.resync);
    this.healthBurst.close();
    this.dnsService.stop();
    this.linkLoad.stop();
    await this.monitors.stopAll();
    await this.passive?.stop();
    await this.flows.stop();
    await this.reconciler.close();
    closeNftSession();
    await this.facts?.stop();
    if (this.spawner) {
      useSpawner(null);
      this.spawner.close();
    }
    await this.hook.idle();
    if (this.api) await this.api.close();
    this.log.info({ reason: "signal" }, "nflb stopped; the data plane stays in place");
  }

  // ---- monitors -------------------------------------------------------------------------

  private async adoptMonitors(): Promise<void> {
    const maint = this.model.overrides.maint;
    const fresh = await this.monitors.update(this.model.config, (s, b) => maint.get(s)?.has(b) ?? false);
    for (const o of fresh.uplinks) this.model.uplinkObs.set(o.name, o);
    for (const o of fresh.backends) this.model.observeBackend(o);
    this.model.probed.clear();
    for (const n of Object.keys(this.model.config.uplinks ?? {}))
      if (this.monitors.isProbed(n)) this.model.probed.add(n);
  }

  private onUplinkChange(o: UplinkObservation): void {
    if (this.stopped || !this.model.config.uplinks?.[o.name]) return;
    const prev = this.model.uplinkObs.get(o.name);
    const before = prev?.state;
    this.model.uplinkObs.set(o.name, o);
    this.model.observeRound(o);
    const families = this.familyChanges(prev, o);
    if (before === o.state) {
      // One family went down or came back while the other kept the uplink up: only its split moves.
      if (families.length) void this.reconciler.reconcile(families.join("; "));
      return;
    }
    const disabled = this.model.overrides.disabledUplinks.has(o.name);
    this.passive?.setUp(o.name, o.state === "up");
    this.metricsRegistry.transitions.inc({ uplink: o.name, to: o.state });
    const fields = {
      uplink: o.name,
      state: o.state,
      reason: o.reason,
      rtt_ms: o.rttMs,
      loss: o.loss,
      disabled,
    };
    if (o.state === "down") this.log.warn(fields, `uplink ${o.name} down`);
    else this.log.info(fields, `uplink ${o.name} up`);
    this.publish({ kind: "uplink", name: o.name, state: o.state, reason: o.reason });
    void this.reconciler.reconcile(`uplink ${o.name} ${o.state}: ${o.reason}`);
  }

  /** Log, count and publish each family of `o` whose probed state changed; their descriptions. */
  private familyChanges(prev: UplinkObservation | undefined, o: UplinkObservation): string[] {
    const out: string[] = [];
    for (const fam of [4, 6] as const) {
      const f = o.families?.[fam];
      if (!f?.probed) continue;
      const was = prev?.families?.[fam]?.state ?? prev?.state ?? "up";
      if (was === f.state) continue;
      const family = `ipv${fam}` as const;
      this.metricsRegistry.familyTransitions.inc({ uplink: o.name, family, to: f.state });
      const fields = {
        uplink: o.name,
        family,
        state: f.state,
        reason: f.reason,
        rtt_ms: f.rttMs,
        loss: f.loss,
      };
      if (f.state === "down") this.log.warn(fields, `uplink ${o.name} IPv${fam} down`);
      else this.log.info(fields, `uplink ${o.name} IPv${fam} up`);
      this.publish({
        kind: "uplink",
        name: o.name,
        state: o.state,
        reason: `IPv${fam} ${f.state}: ${f.reason}`,
        family,
      });
      out.push(`uplink ${o.name} IPv${fam} ${f.state}: ${f.reason}`);
    }
    return out;
  }

  /** The marks the applied plan gave the uplinks: passive health tells their connections by them. */
  private configurePassive(): void {
    if (!this.passive) return;
    const marks = new Map<string, number>();
    for (const u of this.reconciler.last?.desired.uplinks?.uplinks ?? []) marks.set(u.name, u.mark);
    this.passive.configure(this.model.config, marks);
    for (const name of marks.keys())
      this.passive.setUp(name, this.model.uplinkObs.get(name)?.state !== "down");
  }

  private onUplinkPassive(o: PassiveOutcome): void {
    if (this.stopped || !this.model.config.uplinks?.[o.name]) return;
    this.passive?.outcome(o);
    const fields = { uplink: o.name, passive: o.result, reason: o.reason };
    if (o.result === "confirmed") this.log.warn(fields, `uplink ${o.name} passive suspicion confirmed`);
    else if (o.result === "suspect") this.log.info(fields, `uplink ${o.name} suspect (passive)`);
    else this.log.info(fields, `uplink ${o.name} passive suspicion cleared`);
  }

  private onUplinkRound(o: UplinkObservation): void {
    if (this.stopped || !this.model.config.uplinks?.[o.name]) return;
    // A round never changes up/down: that comes as a `change`. It may move an auto weight.
    const known = this.model.uplinkObs.get(o.name);
    const moved = this.model.observeRound(
      known && known.state !== o.state ? { ...o, state: known.state } : o,
    );
    if (moved)
      void this.reconciler.reconcile(`uplink ${o.name} quality ${o.quality.toFixed(2)} (weights: auto)`);
  }

  /** Overflow: an uplink crossed its threshold, or came back below `recover`. */
  private onSpill(name: string, spilling: boolean, v: LoadView): void {
    if (this.stopped || this.model.config.balance.method !== "overflow") return;
    const o = this.model.config.balance.overflow;
    const rate = `${formatBitrate(v.down ?? 0)} down, ${formatBitrate(v.up ?? 0)} up`;
    const pct = (x: number) => `${Math.round(x * 100)}%`;
    const reason = spilling
      ? `load ${pct(v.ratio ?? 0)} of capacity (${rate}) above threshold ${pct(o.threshold)}: new connections spill to the next uplink`
      : `load ${pct(v.ratio ?? 0)} of capacity (${rate}) below recover ${pct(o.recover)}: takes new connections again`;
    const state = spilling ? "spilling" : "filling";
    this.log.info({ uplink: name, overflow: state, load_ratio: v.ratio, reason }, `uplink ${name} ${state}`);
    this.publish({ kind: "uplink", name, state, reason });
    void this.reconciler.reconcile(`uplink ${name} ${state}: ${reason}`, { quiet: true });
  }

  private onBackendChange(o: BackendObservation): void {
    if (this.stopped || !this.model.config.services?.[o.service]) return;
    const before = this.model.backendObs.get(o.service)?.get(o.backend)?.state;
    this.model.observeBackend(o);
    if (before === o.state) return;
    if (o.state === "up") this.flows.backendUp(o.service, o.backend);
    this.healthBurst.transition(o);
    this.publish({
      kind: "backend",
      name: `${o.service}/${o.backend}`,
      service: o.service,
      backend: o.backend,
      state: o.state,
      reason: o.reason,
    });
  }

  private onClusterChange(snapshot: ClusterView): void {
    if (this.stopped) return;
    const before = this.model.cluster?.buckets_owned;
    this.model.cluster = snapshot;
    if (before === snapshot.buckets_owned) return;
    const reason = `buckets owned ${before ?? 0} → ${snapshot.buckets_owned}`;
    this.log.info(
      { node: snapshot.node, buckets_owned: snapshot.buckets_owned, reason },
      "cluster ownership changed",
    );
    this.publish({
      kind: "cluster",
      name: snapshot.node,
      state: `${snapshot.buckets_owned} buckets`,
      reason,
    });
  }

  private refreshCluster(): void {
    this.model.cluster = this.monitors.clusterSnapshot();
  }

  private publish(e: NewEvent): void {
    this.hook.notify(this.events.publish(e));
  }

  // ---- API ------------------------------------------------------------------------------

  private async listen(): Promise<void> {
    const listen = this.opts.api ?? this.model.config.api.listen ?? DEFAULT_API;
    const hp = parseHostPort(listen);
    if ("error" in hp) throw new ConfigError("--api", [{ path: ["api", "listen"], message: hp.error }]);
    this.api = buildApi(this, {
      onAction: (f) => this.log.info({ ...f, reason: "api" }, "api request"),
      hosts: () => this.model.config.api.hosts,
    });
    await this.api.listen({ host: hp.addr.text, port: hp.port });
    this.apiAddress = listen;
  }

  token(): string | null {
    return this.model.config.api.token ?? (process.env.NFLB_API_TOKEN || null);
  }

  async status(): Promise<StatusJson> {
    const applied = this.reconciler.last;
    const [counters, active] = await Promise.all([this.counters(), this.activeConnections()]);
    const s0 = this.model.status(applied, this.reconciler.keepingLast, counters, this.backendCounter, active);
    const passive = this.passive;
    const s = passive
      ? { ...s0, uplinks: s0.uplinks.map((u) => ({ ...u, passive: passiveStatus(passive, u.name) })) }
      : s0;
    const dns = this.dnsService.status();
    return dns ? { ...s, dns } : s;
  }

  dns(rule?: string, address?: string): DnsView | null {
    return this.dnsService.view(rule, address);
  }

  async metrics(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.metricsRegistry.contentType(), body: await this.metricsRegistry.scrape() };
  }

  async setUplinkEnabled(name: string, enabled: boolean): Promise<ActionResult> {
    if (!Object.hasOwn(this.model.config.uplinks ?? {}, name))
      return { ok: false, status: 404, error: `no uplink ${name}` };
    const set = this.model.overrides.disabledUplinks;
    const changed = enabled ? set.delete(name) : !set.has(name) && Boolean(set.add(name));
    const state = this.model.uplinkState(name);
    if (changed) {
      const reason = enabled ? "enabled through the API" : "disabled through the API";
      this.metricsRegistry.transitions.inc({ uplink: name, to: state });
      this.log.info({ uplink: name, state, reason }, `uplink ${name} ${enabled ? "enabled" : "disabled"}`);
      this.publish({ kind: "uplink", name, state, reason });
    }
    if (changed) await this.saveOverrides();
    const r = await this.reconciler.reconcile(`api: ${enabled ? "enable" : "disable"} uplink ${name}`);
    return this.actionResult(r, { uplink: name, state, changed });
  }

  setBackendDrained(service: string, backend: string, drained: boolean): Promise<ActionResult> {
    return this.setBackendAdmin(service, backend, drained ? "drain" : "enable");
  }

  setBackendMaint(service: string, backend: string): Promise<ActionResult> {
    return this.setBackendAdmin(service, backend, "maint");
  }

  /**
   * drain: no new connections; maint: that, and its checks stopped; enable: clears both. Both
   * sets are exclusive: a backend is drained or in maint, never both.
   */
  private async setBackendAdmin(
    service: string,
    backend: string,
    action: "drain" | "maint" | "enable",
  ): Promise<ActionResult> {
    const found = this.findBackendOf(service, backend);
    if ("error" in found) return found.error;
    const address = found.address;
    const o = this.model.overrides;
    const before = this.model.backendReason(service, address, "");
    const set = (m: Map<string, Set<string>>, on: boolean) => {
      let s = m.get(service);
      if (!s) m.set(service, (s = new Set()));
      if (on) s.add(address);
      else s.delete(address);
    };
    const wasMaint = o.maint.get(service)?.has(address) ?? false;
    set(o.drained, action === "drain");
    set(o.maint, action === "maint");
    const changed = this.model.backendReason(service, address, "") !== before;
    // Checks stop on entering maint and start again (from scratch) on leaving it.
    if ((action === "maint") !== wasMaint) {
      await this.adoptMonitors();
      await this.monitors.start();
    }
    const state = this.backendStateNow(service, address);
    const reason = `${action === "drain" ? "drained" : action === "maint" ? "put in maint" : "enabled"} through the API`;
    // The overrides file is written while the kernel changes; the answer waits for both.
    const saved = changed ? this.announceOverride(service, address, state, reason, {}, action) : undefined;
    const r = await this.reconciler.reconcile(`api: ${action} backend ${service}/${address}`, {
      servicesOnly: true,
    });
    await saved;
    return this.actionResult(r, { service, backend: address, state, changed });
  }

  /** A runtime weight in place of the configured one (0..10000); kept across reloads and restarts. */
  async setBackendWeight(service: string, backend: string, weight: number): Promise<ActionResult> {
    const found = this.findBackendOf(service, backend);
    if ("error" in found) return found.error;
    const address = found.address;
    let m = this.model.overrides.weights.get(service);
    if (!m) this.model.overrides.weights.set(service, (m = new Map()));
    const changed = m.get(address) !== weight;
    m.set(address, weight);
    const state = this.backendStateNow(service, address);
    // The overrides file is written while the kernel changes; the answer waits for both.
    const saved = changed
      ? this.announceOverride(
          service,
          address,
          state,
          `weight ${weight} set through the API`,
          { weight },
          `weight ${weight}`,
        )
      : undefined;
    const r = await this.reconciler.reconcile(`api: weight ${weight} for backend ${service}/${address}`, {
      servicesOnly: true,
    });
    await saved;
    return this.actionResult(r, { service, backend: address, state, weight, changed });
  }

  private findBackendOf(service: string, backend: string): { address: string } | { error: ActionResult } {
    if (!Object.hasOwn(this.model.config.services ?? {}, service))
      return { error: { ok: false, status: 404, error: `no service ${service}` } };
    const address = findBackend(this.model.config, service, backend);
    if (!address)
      return { error: { ok: false, status: 404, error: `service ${service} has no backend ${backend}` } };
    return { address };
  }

  private backendStateNow(service: string, address: string) {
    const weight =
      this.model.config.services?.[service]?.backends.find((b) => b.address === address)?.weight ?? 0;
    return backendState(
      service,
      address,
      weight,
      this.model.backendObs.get(service)?.get(address),
      this.model.overrides,
    );
  }

  /** An operator's change to a backend: logged, published as an event, and kept across restarts. */
  private async announceOverride(
    service: string,
    address: string,
    state: string,
    reason: string,
    fields: Record<string, unknown>,
    what: string,
  ): Promise<void> {
    this.log.info(
      { service, backend: address, state, ...fields, reason },
      `backend ${service}/${address} ${what}`,
    );
    this.publish({
      kind: "backend",
      name: `${service}/${address}`,
      service,
      backend: address,
      state,
      reason,
    });
    await this.saveOverrides();
  }

  /** Keep the operator's overrides across a restart; a failed write is logged, the change stands. */
  private async saveOverrides(): Promise<void> {
    const file = this.opts.overridesFile;
    if (!file) return;
    await saveOverrides(file, this.model.overrides).catch((e: unknown) =>
      this.log.warn(
        { file, err: (e as Error).message, reason: "state file" },
        "could not keep the overrides",
      ),
    );
  }

  private actionResult(r: ReconcileResult, body: Record<string, unknown>): ActionResult {
    if (r.action === "failed")
      return { ok: false, status: 409, error: `recorded, but the apply failed: ${r.error?.message}` };
    return { ok: true, body: { ...body, applied: r.action } };
  }

  // ---- metrics sources ------------------------------------------------------------------

  /** The key of a backend's element counters (src/plan/nft-services.ts): its service and address. */
  private readonly backendCounter = (service: string, backend: string): string | null => {
    if (this.opts.backendCounter) return this.opts.backendCounter(service, backend);
    const s = this.model.config.services?.[service];
    if (!s?.backends.some((b) => b.address === backend)) return null;
    const vip = parseHostPort(s.listen);
    const to = parseHostPort(backend);
    if ("error" in vip || "error" in to) return null;
    return backendCounterKey(vip.addr.family, vip.addr.text, s.protocol, vip.port, to.addr.text, to.port);
  };

  private counters(): Promise<Counters> {
    const now = Date.now();
    if (!this.counterCache || now - this.counterCache.at > COUNTER_CACHE_MS) {
      const read = this.opts.readCounters ?? readNflbCounters;
      this.counterCache = { at: now, value: read().catch(() => new Map()) };
    }
    return this.counterCache.value;
  }

  /** Connections each backend holds now: kept current by conntrack's events (src/daemon/live-flows.ts). */
  private activeConnections(): Promise<ActiveConnections | null> {
    return Promise.resolve(this.flows.active());
  }

  private uplinkMetrics() {
    const desired = this.reconciler.last?.desired;
    const shares = sharesOf(desired);
    const famShares = { 4: sharesOf(desired, 4), 6: sharesOf(desired, 6) };
    const planned = new Map(desired?.uplinks?.uplinks.map((u) => [u.name, u]));
    return Object.entries(this.model.config.uplinks ?? {}).map(([name, u]) => {
      const obs = this.model.uplinkObs.get(name);
      const p = planned.get(name);
      const family = (fam: 4 | 6) => {
        const f = obs?.families?.[fam];
        return {
          // Takes this family's new connections in the plan in force.
          up: (fam === 4 ? p?.live4 : p?.live6) ?? false,
          rttMs: f ? f.rttMs : (obs?.rttMs ?? null),
          loss: f ? f.loss : (obs?.loss ?? 0),
          share: famShares[fam].get(name) ?? 0,
        };
      };
      return {
        name,
        iface: u.interface,
        up: this.model.uplinkState(name) === "up",
        rttMs: obs?.rttMs ?? null,
        loss: obs?.loss ?? 0,
        share: shares.get(name) ?? 0,
        families: { ipv4: family(4), ipv6: family(6) },
        jitterMs: obs?.jitterMs ?? null,
        ...this.loadMetrics(name),
      };
    });
  }

  private loadMetrics(name: string) {
    const c = this.model.config;
    const v = this.linkLoad.view(name);
    return {
      load: v,
      capacity: c.uplinks?.[name]?.capacity ?? null,
      spilling:
        c.balance.method === "overflow" && c.uplinks?.[name]?.capacity ? (v?.spilling ?? false) : null,
    };
  }

  private backendMetrics() {
    const counter = this.backendCounter;
    return Object.entries(this.model.config.services ?? {}).flatMap(([service, s]) =>
      s.backends.map((b) => ({
        service,
        backend: b.address,
        up: this.model.backendObs.get(service)?.get(b.address)?.state !== "down",
        counter: counter(service, b.address),
      })),
    );
  }
}

/** An uplink's passive health for status: null when nothing watches it. */
function passiveStatus(w: UplinkPassiveWatch, name: string): UplinkStatus["passive"] {
  const st = w.stats(name);
  return st
    ? { answered: st.answered, unanswered: st.unanswered, streak: st.streak, suspect: st.suspect }
    : null;
}
