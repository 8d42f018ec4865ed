import type { Config } from "../config/schema.ts";
import { formatHostPort } from "../net/ip.ts";
import { allHealthy, buildModel, desiredState } from "../plan/desired.ts";
import { planServices, udpBackendsGoneDown, type BackendState, type ServicesPlan } from "../plan/services.ts";
import type { BackendHealth, Facts, ServiceHealth } from "../plan/types.ts";
import { diff } from "../nft/diff.ts";
import { countServiceConnections, deleteBackendFlows } from "../system/conntrack.ts";
import { nftApply } from "../system/nft.ts";
import { backendCheckers, type BackendChecker, type BackendCheckerOptions } from "./backend-checker.ts";
import type { BackendObservation } from "./types.ts";

/**
 * A services-only reconcile loop: backend checks, API-like weight overrides and least-conn load
 * → plan → one small nft transaction per change, plus the UDP conntrack cleanup. The daemon does
 * the same inside its own reconcile loop; this one runs standalone (lab tests, `backend-loop-main`).
 */
export type LoopEvent =
  | { type: "change"; obs: BackendObservation }
  | {
      type: "applied";
      kind: "full" | "update";
      ms: number;
      lines: number;
      states: Record<string, Record<string, BackendState>>;
      loads: Record<string, Record<string, number>>;
    }
  | { type: "flushed"; service: string; backend: string; deleted: number }
  | { type: "error"; message: string };

export interface ServiceLoopOptions extends BackendCheckerOptions {
  facts?: Facts;
  /** Install the whole table first (default true); false when the table is already in place. */
  applyFull?: boolean;
  /** How often least-conn services re-read their connection counts from conntrack (ms). */
  loadIntervalMs?: number;
  onEvent?: (e: LoopEvent) => void;
  /** Seams for tests: the nft transaction and the conntrack calls. */
  apply?: (script: string) => Promise<void>;
  countConnections?: typeof countServiceConnections;
  deleteFlows?: typeof deleteBackendFlows;
}

export class ServiceHealthLoop {
  private readonly checkers: BackendChecker[];
  private readonly weights = new Map<string, number>();
  private readonly loads = new Map<string, number>();
  private current: ServicesPlan | null = null;
  private dirty = false;
  private reconciling: Promise<void> | undefined;
  private loadTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private readonly apply: (script: string) => Promise<void>;

  constructor(
    private readonly config: Config,
    private readonly opts: ServiceLoopOptions = {},
  ) {
    this.checkers = backendCheckers(config, opts);
    this.apply = opts.apply ?? ((s) => nftApply(s));
    for (const c of this.checkers)
      c.on("change", (obs) => {
        this.emit({ type: "change", obs });
        this.kick();
      });
  }

  async start(): Promise<void> {
    this.running = true;
    const t0 = performance.now();
    const health = this.health();
    if (this.opts.applyFull ?? true) {
      const d = desiredState(this.config, { ...allHealthy(this.config), services: health }, this.facts());
      await this.apply(d.nft);
      this.current = d.services;
      this.emitApplied("full", t0, d.nft.split("\n").length);
    } else {
      this.current = planServices(this.config, health, this.facts());
    }
    for (const c of this.checkers) c.start();
    if (this.leastConnServices().length) this.scheduleLoads(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.loadTimer !== undefined) clearTimeout(this.loadTimer);
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    await Promise.all(this.checkers.map((c) => c.stop()));
    await this.reconciling;
  }

  /** Like the API's drain (0) and enable (null: back to the configured weight). */
  setWeight(service: string, backend: string, weight: number | null): void {
    const k = key(service, backend);
    if (weight === null) this.weights.delete(k);
    else this.weights.set(k, weight);
    this.kick();
  }

  get plan(): ServicesPlan | null {
    return this.current;
  }

  /** Resolves once every change seen so far is in the kernel. */
  async settled(): Promise<void> {
    while (this.reconciling) await this.reconciling;
  }

  private facts(): Facts {
    return this.opts.facts ?? { interfaces: new Map() };
  }

  private health(): ServiceHealth {
    const out: ServiceHealth = {};
    const obs = new Map(this.checkers.map((c) => [key(c.spec.service, c.spec.backend), c.snapshot()]));
    for (const [svc, s] of Object.entries(this.config.services ?? {})) {
      const per: Record<string, BackendHealth> = {};
      for (const b of s.backends) {
        const k = key(svc, b.address);
        per[b.address] = {
          up: obs.get(k)?.state !== "down",
          weight: this.weights.get(k) ?? b.weight,
          connections: this.loads.get(k) ?? 0,
        };
      }
      out[svc] = per;
    }
    return out;
  }

  private kick(): void {
    this.dirty = true;
    if (!this.running || this.reconciling) return;
    this.reconciling = (async () => {
      try {
        while (this.dirty && this.running) {
          this.dirty = false;
          await this.reconcile().catch((e: unknown) => {
            this.emit({ type: "error", message: (e as Error).message });
            // The kernel still holds the previous plan: try again shortly.
            this.retryTimer ??= setTimeout(() => {
              this.retryTimer = undefined;
              this.kick();
            }, RETRY_MS);
          });
        }
      } finally {
        this.reconciling = undefined;
      }
    })();
  }

  private async reconcile(): Promise<void> {
    const t0 = performance.now();
    const next = planServices(this.config, this.health(), this.facts());
    if (!next) return;
    // Both models hold only the services' objects: their diff touches nothing else in the table.
    const script = diff(buildModel(null, this.current, undefined), buildModel(null, next, undefined)).script;
    const lines = script ? script.split("\n").length - 1 : 0;
    if (script) {
      await this.apply(script);
      const prev = this.current;
      this.current = next;
      this.emitApplied("update", t0, lines);
      await this.flushUdp(prev, next);
    } else {
      this.current = next;
    }
  }

  /** UDP has no end of connection: flows pinned to a backend that went down would never move. */
  private async flushUdp(prev: ServicesPlan | null, next: ServicesPlan): Promise<void> {
    const del = this.opts.deleteFlows ?? deleteBackendFlows;
    for (const f of udpBackendsGoneDown(prev, next)) {
      const deleted = await del(f.flows, f.to);
      this.emit({ type: "flushed", service: f.service, backend: f.backend, deleted });
    }
  }

  private leastConnServices() {
    return Object.entries(this.config.services ?? {}).filter(([, s]) => s.scheduler === "least-conn");
  }

  private scheduleLoads(ms: number): void {
    if (!this.running) return;
    this.loadTimer = setTimeout(() => void this.refreshLoads(), ms);
  }

  private async refreshLoads(): Promise<void> {
    const count = this.opts.countConnections ?? countServiceConnections;
    let changed = false;
    try {
      for (const s of this.current?.services ?? []) {
        if (s.scheduler !== "least-conn") continue;
        const counts = await count({ family: s.family, protocol: s.protocol, vip: s.vip.text, port: s.port });
        for (const b of s.backends) {
          const k = key(s.name, b.key);
          const n = counts.get(formatHostPort(b.addr, b.port)) ?? 0;
          if ((this.loads.get(k) ?? 0) !== n) changed = true;
          this.loads.set(k, n);
        }
      }
    } catch (e) {
      this.emit({ type: "error", message: (e as Error).message });
    }
    if (changed) this.kick();
    this.scheduleLoads(this.opts.loadIntervalMs ?? 1000);
  }

  private emitApplied(kind: "full" | "update", t0: number, lines: number): void {
    const states: Record<string, Record<string, BackendState>> = {};
    const loads: Record<string, Record<string, number>> = {};
    for (const s of this.current?.services ?? []) {
      states[s.name] = Object.fromEntries(s.backends.map((b) => [b.key, b.state]));
      if (s.scheduler === "least-conn")
        loads[s.name] = Object.fromEntries(s.backends.map((b) => [b.key, b.connections]));
    }
    this.emit({ type: "applied", kind, ms: Math.round(performance.now() - t0), lines, states, loads });
  }

  private emit(e: LoopEvent): void {
    this.opts.onEvent?.(e);
  }
}

const key = (service: string, backend: string) => `${service}\0${backend}`;
const RETRY_MS = 1000;

/** Start a loop; `stop()` it when done. */
export async function runServiceHealthLoop(
  c: Config,
  opts: ServiceLoopOptions = {},
): Promise<ServiceHealthLoop> {
  const loop = new ServiceHealthLoop(c, opts);
  await loop.start();
  return loop;
}
