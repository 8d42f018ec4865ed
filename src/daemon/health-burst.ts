import type { BackendObservation } from "../health/types.ts";
import type { Log } from "./log.ts";

export interface HealthBurstOptions {
  log: Log;
  /** Runs one reconcile for every transition since the last call (the reason names them). */
  reconcile: (reason: string) => void;
  /** A transition waits this long for others before the reconcile (ms); each new one restarts it. */
  quietMs?: number;
  /** …but never longer than this after the first one of a batch (ms). */
  maxDelayMs?: number;
  /** Per-backend log lines a second; beyond it one summary line a second. */
  linesPerSecond?: number;
  /** Timers; tests pass node:test's mocked ones through the globals. */
  setTimeout?: (fn: () => void, ms: number) => NodeJS.Timeout;
  clearTimeout?: (t: NodeJS.Timeout) => void;
}

export const QUIET_MS = 50;
export const MAX_DELAY_MS = 1000;
export const LINES_PER_SECOND = 20;
/** Backends a reconcile's reason names before "(+N more)". */
const REASON_EXAMPLES = 3;

interface Tally {
  down: number;
  up: number;
  downServices: Set<string>;
  upServices: Set<string>;
}

const emptyTally = (): Tally => ({ down: 0, up: 0, downServices: new Set(), upServices: new Set() });

/**
 * Backend health transitions, as the daemon logs and applies them. A burst (every backend of a
 * dead rack, the first round after a start with everything unreachable) becomes one reconcile a
 * second at most: the first transition after a quiet second is reconciled at once (with whatever
 * arrives in the same turn), later ones wait `quietMs` for the next, at most `maxDelayMs`, and the
 * reconciler then plans from every observation at once, so its one transaction carries all of them. Log lines are
 * bounded: `linesPerSecond` per-backend lines a second, then one summary line for the rest of the
 * second ("N backends down in M services …"). Events and metrics are not this class's business:
 * the daemon still publishes each transition.
 */
export class HealthBurst {
  private readonly quietMs: number;
  private readonly maxDelayMs: number;
  private readonly perSecond: number;
  private readonly set: (fn: () => void, ms: number) => NodeJS.Timeout;
  private readonly clear: (t: NodeJS.Timeout) => void;

  /** Transitions not reconciled yet: count and the first few as text. */
  private pending = 0;
  private examples: string[] = [];
  private firstAt = 0;
  private lastFlushAt = -Infinity;
  private flushTimer: NodeJS.Timeout | undefined;

  /** Lines logged in the current second; transitions beyond them are tallied for the summary. */
  private lines = 0;
  private windowTimer: NodeJS.Timeout | undefined;
  private held = emptyTally();
  private closed = false;

  constructor(private readonly opts: HealthBurstOptions) {
    this.quietMs = opts.quietMs ?? QUIET_MS;
    this.maxDelayMs = opts.maxDelayMs ?? MAX_DELAY_MS;
    this.perSecond = opts.linesPerSecond ?? LINES_PER_SECOND;
    this.set = opts.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
    this.clear = opts.clearTimeout ?? ((t) => clearTimeout(t));
  }

  /** A backend changed state (the caller has filtered out non-changes). */
  transition(o: BackendObservation): void {
    if (this.closed) return;
    this.logLine(o);
    this.queue(`backend ${o.service}/${o.backend} ${o.state}: ${o.reason}`);
  }

  /** Reconcile what is pending now and log what is held (shutdown, reload). */
  flush(): void {
    if (this.flushTimer !== undefined) this.clear(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pending === 0) return;
    const more = this.pending - this.examples.length;
    const reason =
      this.pending === 1
        ? (this.examples[0] ?? "")
        : `${this.pending} backend health changes: ${this.examples.join("; ")}${more > 0 ? ` (+${more} more)` : ""}`;
    this.pending = 0;
    this.examples = [];
    this.lastFlushAt = Date.now();
    this.opts.reconcile(reason);
  }

  /** Stop: nothing more is reconciled; held log lines are summarized. */
  close(): void {
    this.closed = true;
    if (this.flushTimer !== undefined) this.clear(this.flushTimer);
    this.flushTimer = undefined;
    this.pending = 0;
    this.endWindow();
  }

  private queue(reason: string): void {
    const now = Date.now();
    // Leading edge: a transition after a quiet spell is applied at once (a lone failure fails over
    // without waiting); the reconcile reads the observations a turn later, so what else arrives in
    // this turn rides along, and what follows it is batched.
    if (this.pending === 0 && this.flushTimer === undefined && now - this.lastFlushAt >= this.maxDelayMs) {
      this.lastFlushAt = now;
      this.opts.reconcile(reason);
      return;
    }
    if (this.pending === 0) this.firstAt = now;
    this.pending++;
    if (this.examples.length < REASON_EXAMPLES) this.examples.push(reason);
    if (this.flushTimer !== undefined) this.clear(this.flushTimer);
    const wait = Math.max(0, Math.min(this.quietMs, this.firstAt + this.maxDelayMs - now));
    this.flushTimer = this.set(() => {
      this.flushTimer = undefined;
      this.flush();
    }, wait);
  }

  private logLine(o: BackendObservation): void {
    if (this.windowTimer === undefined) {
      this.lines = 0;
      this.windowTimer = this.set(() => this.endWindow(), 1000);
    }
    if (this.lines < this.perSecond) {
      this.lines++;
      const fields = { service: o.service, backend: o.backend, state: o.state, reason: o.reason };
      if (o.state === "down") this.opts.log.warn(fields, `backend ${o.service}/${o.backend} down`);
      else this.opts.log.info(fields, `backend ${o.service}/${o.backend} up`);
      return;
    }
    const t = this.held;
    if (o.state === "down") {
      t.down++;
      t.downServices.add(o.service);
    } else {
      t.up++;
      t.upServices.add(o.service);
    }
  }

  /** The end of a second: one line for the transitions not logged one by one. */
  private endWindow(): void {
    if (this.windowTimer !== undefined) this.clear(this.windowTimer);
    this.windowTimer = undefined;
    const t = this.held;
    this.held = emptyTally();
    if (t.down + t.up === 0) return;
    const parts: string[] = [];
    if (t.down) parts.push(`${t.down} backends down in ${t.downServices.size} services`);
    if (t.up) parts.push(`${t.up} backends up in ${t.upServices.size} services`);
    const fields = {
      down: t.down,
      up: t.up,
      services_down: t.downServices.size,
      services_up: t.upServices.size,
      reason: `more than ${this.perSecond} backend changes a second are summarized`,
    };
    const msg = `${parts.join(", ")} (more, not logged one by one)`;
    if (t.down) this.opts.log.warn(fields, msg);
    else this.opts.log.info(fields, msg);
  }
}
