import type { Config } from "../config/schema.ts";
import type { FlowMonitor, FlowOutcome } from "../health/flow-monitor.ts";
import { PassiveHealth, type PassiveVerdict } from "../health/passive.ts";
import { parseHostPort } from "../net/ip.ts";
import { flowServiceKey } from "../system/conntrack-events.ts";
import type { Log } from "./log.ts";
import type { ActiveConnections } from "./model.ts";

/** least-conn services are planned again at most this often while their counts move. */
export const LEAST_CONN_REFRESH_MS = 250;

export interface LiveFlowsHooks {
  log: Log;
  /** Counts of a least-conn service changed: plan its slots again (throttled here). */
  leastConnChanged(): void;
  /** The passive check takes a backend down. */
  passiveDown(v: PassiveVerdict): void;
}

/**
 * The daemon's live view of its services' connections: one FlowMonitor (conntrack events) while
 * the config has services, the counts least-conn and status read, and passive health fed from the
 * handshakes it sees.
 */
export class LiveFlows {
  private monitor: FlowMonitor | null = null;
  private readonly passive = new PassiveHealth();
  /** service name → its flow key. */
  private keys = new Map<string, string>();
  private leastConn = new Set<string>();
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshAt = 0;
  private stopped = false;

  constructor(
    private readonly factory: (() => FlowMonitor) | undefined,
    private readonly hooks: LiveFlowsHooks,
  ) {}

  /** Follow a (new) config: start or stop the monitor, re-key services, passive settings. */
  configure(c: Config): void {
    if (this.stopped) return;
    this.keys = new Map();
    this.leastConn = new Set();
    for (const [name, s] of Object.entries(c.services ?? {})) {
      const hp = parseHostPort(s.listen);
      if ("error" in hp) continue;
      const key = flowServiceKey(s.protocol, hp.addr.text, hp.port);
      this.keys.set(name, key);
      if (s.scheduler === "least-conn") this.leastConn.add(key);
    }
    this.passive.configure(c);
    if (this.keys.size > 0 && !this.monitor && this.factory) {
      const m = this.factory();
      m.on("counts", (changed) => this.onCounts(changed));
      m.on("outcome", (o) => this.onOutcome(o));
      this.monitor = m;
      m.start();
    } else if (this.keys.size === 0 && this.monitor) {
      void this.monitor.stop();
      this.monitor = null;
    }
    this.monitor?.setSynTimeout(PassiveHealth.synTimeout(c));
  }

  /** Connections open now per backend (canonical ADDRESS:PORT) of a service; null while unknown. */
  connections(service: string): ReadonlyMap<string, number> | null {
    const key = this.keys.get(service);
    return key !== undefined ? (this.monitor?.open(key) ?? null) : null;
  }

  /** Every service's counts, for status and metrics; null without a monitor. */
  active(): ActiveConnections | null {
    if (!this.monitor) return null;
    const out = new Map<string, ReadonlyMap<string, number>>();
    for (const name of this.keys.keys()) {
      const open = this.connections(name);
      if (open) out.set(name, open);
    }
    return out;
  }

  /** A backend is up again (or its state was set by hand): its passive window starts afresh. */
  backendUp(service: string, backend: string): void {
    this.passive.reset(service, backend);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.refreshTimer);
    await this.monitor?.stop();
    this.monitor = null;
  }

  private onCounts(changed: ReadonlySet<string>): void {
    if (this.stopped || ![...changed].some((k) => this.leastConn.has(k))) return;
    if (this.refreshTimer !== undefined) return;
    // At most one re-plan per LEAST_CONN_REFRESH_MS; the first change of a quiet spell goes at once.
    const wait = Math.max(0, this.refreshAt + LEAST_CONN_REFRESH_MS - Date.now());
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      this.refreshAt = Date.now();
      this.hooks.leastConnChanged();
    }, wait);
    this.refreshTimer.unref();
  }

  private onOutcome(o: FlowOutcome): void {
    if (this.stopped) return;
    const v = this.passive.record(o);
    if (v) this.hooks.passiveDown(v);
  }
}
