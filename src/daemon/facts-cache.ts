import type { Facts } from "../plan/types.ts";
import { describeExit, stopProcess, type LineProcess, type SpawnLines } from "../health/probe-process.ts";

/** A read older than this is never reused, events or not (a missed event heals by itself). */
const TTL_MS = 10_000;
/**
 * `ip monitor` prints nothing once it listens: a read that starts this long after it was started
 * is taken as seen by it (its netlink subscription is made within a few ms of its start).
 */
const SETTLE_MS = 500;
const RESTART_MS = 1000;

export interface FactsCacheDeps {
  spawn: SpawnLines;
  now?: () => number;
  log?: (msg: string) => void;
  ttlMs?: number;
  settleMs?: number;
}

/**
 * The host's interfaces as the last read found them, reused by a run that asks for it (a change of
 * services only: a backend's health, weight, drain or maint) while nothing on the links can have
 * changed since: at 5,000 services the `ip` read costs 10–50 ms of a change that should take
 * less than 50 (issue 11). Conservative by construction: a read is reusable only when one
 * `ip monitor link address route` was listening before it started and printed nothing since (any
 * line, a route's too, drops it), it is younger than TTL_MS, and it was made with the same
 * `gateways`. Without a listening monitor (not started, died, restarting) every run reads.
 */
export class FactsCache {
  private generation = 0;
  private monitor: LineProcess | undefined;
  private listeningAt: number | null = null;
  private restart: NodeJS.Timeout | undefined;
  private running = false;
  private kept: { gateways: boolean; generation: number; at: number; facts: Facts } | null = null;
  private readonly now: () => number;

  constructor(
    private readonly read: (o: { gateways: boolean }) => Promise<Facts>,
    private readonly deps: FactsCacheDeps,
  ) {
    this.now = deps.now ?? (() => performance.now());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.startMonitor();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.restart);
    this.restart = undefined;
    this.kept = null;
    const m = this.monitor;
    this.monitor = undefined;
    this.listeningAt = null;
    if (m) await stopProcess(m);
  }

  /** The facts; the kept ones when `reuse` and nothing can have changed since they were read. */
  async get(o: { gateways: boolean; reuse?: boolean }): Promise<Facts> {
    const k = this.kept;
    const now = this.now();
    if (
      o.reuse === true &&
      k !== null &&
      k.generation === this.generation &&
      k.gateways === o.gateways &&
      now - k.at < (this.deps.ttlMs ?? TTL_MS)
    )
      return k.facts;
    const generation = this.generation;
    const listening =
      this.listeningAt !== null && now - this.listeningAt >= (this.deps.settleMs ?? SETTLE_MS);
    this.kept = null;
    const facts = await this.read({ gateways: o.gateways });
    // An event during the read moved the generation: this read is used once, never kept.
    if (listening && generation === this.generation)
      this.kept = { gateways: o.gateways, generation, at: now, facts };
    return facts;
  }

  private startMonitor(): void {
    let proc: LineProcess;
    try {
      proc = this.deps.spawn(["ip", "monitor", "link", "address", "route"], (line) => {
        if (line) this.changed();
      });
    } catch (e) {
      this.deps.log?.(`ip monitor could not start (${(e as Error).message}); every change reads the links`);
      this.scheduleRestart();
      return;
    }
    this.monitor = proc;
    this.listeningAt = this.now();
    void proc.exited.then((e) => {
      if (this.monitor !== proc) return;
      this.monitor = undefined;
      this.listeningAt = null;
      this.changed();
      if (!this.running) return;
      this.deps.log?.(`ip monitor ${describeExit(e, proc.stderr())}; restarting`);
      this.scheduleRestart();
    });
  }

  private scheduleRestart(): void {
    if (!this.running || this.restart) return;
    this.restart = setTimeout(() => {
      this.restart = undefined;
      if (this.running) this.startMonitor();
    }, RESTART_MS);
    this.restart.unref();
  }

  private changed(): void {
    this.generation++;
    this.kept = null;
  }
}
