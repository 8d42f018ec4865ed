import { EventEmitter } from "node:events";
import {
  flowEventsArgv,
  FLOW_LIST_ARGV,
  LOST_EVENTS,
  parseFlowLine,
  type FlowEvent,
} from "../system/conntrack-events.ts";
import { FlowTable, type FlowOutcome } from "./flow-table.ts";
import { describeExit, spawnLines, stopProcess, type LineProcess, type SpawnLines } from "./probe-process.ts";

export type { FlowOutcome } from "./flow-table.ts";

export type FlowMonitorEvents = {
  /** The open-connection counts of these services (flowServiceKey) changed. Coalesced. */
  counts: [services: ReadonlySet<string>];
  /** A new TCP connection's handshake ended (passive health). */
  outcome: [FlowOutcome];
};

/** Where the daemon gets connection counts and handshake outcomes from. */
export interface FlowMonitor extends EventEmitter<FlowMonitorEvents> {
  start(): void;
  stop(): Promise<void>;
  /** Connections open now per backend (`ADDRESS:PORT`, canonical) of a service; null while unknown. */
  open(service: string): ReadonlyMap<string, number> | null;
  /** A SYN unanswered this long is a timed-out connection (null: never reported). */
  setSynTimeout(ms: number | null): void;
}

export interface ConntrackFlowMonitorOptions {
  spawn?: SpawnLines;
  now?: () => number;
  /** Full re-listing this often, to correct whatever events were missed (default 10 min). */
  resyncMs?: number;
  log?: (msg: string) => void;
}

const RESYNC_MS = 600_000;
const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 30_000;
const STDERR_CHECK_MS = 2000;
/**
 * After lost events, list again at most this often: while a burst overflows the socket, every
 * listing would be lost work (each costs O(flows)).
 */
const LOST_RESYNC_GAP_MS = 5000;
/** Events kept while a listing runs, replayed on top of it; more means another listing. */
const REPLAY_LIMIT = 200_000;

/**
 * One long-lived `conntrack -E` for every service: NEW/UPDATE/DESTROY of DNATed flows keep a
 * FlowTable current, so counts cost the same at 10 or 100,000 connections. A listing (`conntrack
 * -L`) seeds it at start, after the event stream restarts, when conntrack reports lost events
 * (ENOBUFS) and every `resyncMs`; events that arrive during a listing are replayed on top of it.
 */
export class ConntrackFlowMonitor extends EventEmitter<FlowMonitorEvents> implements FlowMonitor {
  private table = new FlowTable();
  private synced = false;
  private running = false;
  private events: LineProcess | null = null;
  private listing: LineProcess | null = null;
  private replay: FlowEvent[] | null = null;
  private replayOverflow = false;
  private resyncAgain = false;
  private restartMs = RESTART_MIN_MS;
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private resyncTimer: ReturnType<typeof setInterval> | undefined;
  private errTimer: ReturnType<typeof setInterval> | undefined;
  private expireTimer: ReturnType<typeof setTimeout> | undefined;
  private synTimeoutMs: number | null = null;
  private changed = new Set<string>();
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private errSeen = 0;
  private lostPending = false;
  private listedAt = -Infinity;
  private readonly spawn: SpawnLines;
  private readonly now: () => number;

  constructor(private readonly opts: ConntrackFlowMonitorOptions = {}) {
    super();
    this.spawn = opts.spawn ?? spawnLines;
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.startEvents();
    this.resyncTimer = setInterval(() => this.resync(), this.opts.resyncMs ?? RESYNC_MS);
    this.resyncTimer.unref();
    this.errTimer = setInterval(() => this.checkLost(), STDERR_CHECK_MS);
    this.errTimer.unref();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.resyncTimer);
    clearInterval(this.errTimer);
    clearTimeout(this.expireTimer);
    clearTimeout(this.flushTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const procs = [this.events, this.listing].filter((p): p is LineProcess => p !== null);
    this.events = null;
    this.listing = null;
    await Promise.all(procs.map((p) => stopProcess(p, 1000)));
  }

  open(service: string): ReadonlyMap<string, number> | null {
    return this.synced ? this.table.open(service) : null;
  }

  setSynTimeout(ms: number | null): void {
    this.synTimeoutMs = ms;
    this.scheduleExpire();
  }

  /** Flows tracked now (for benches and logs). */
  get size(): number {
    return this.table.size;
  }

  private startEvents(): void {
    if (!this.running) return;
    let proc: LineProcess;
    try {
      proc = this.spawn(flowEventsArgv(), (line) => this.onEventLine(line));
    } catch (e) {
      this.opts.log?.(`conntrack -E could not start: ${(e as Error).message}`);
      this.later(() => this.startEvents(), this.backoff());
      return;
    }
    this.events = proc;
    this.errSeen = 0;
    const startedAt = this.now();
    void proc.exited.then((e) => {
      if (this.events !== proc) return;
      this.events = null;
      this.synced = false;
      if (!this.running) return;
      if (this.now() - startedAt > RESTART_MAX_MS) this.restartMs = RESTART_MIN_MS;
      const wait = this.backoff();
      this.opts.log?.(`conntrack -E ${describeExit(e, proc.stderr())}; restarting in ${wait} ms`);
      this.later(() => this.startEvents(), wait);
    });
    // Listen first, then list: nothing that happens in between is missed.
    this.resync();
  }

  private backoff(): number {
    const ms = this.restartMs;
    this.restartMs = Math.min(this.restartMs * 2, RESTART_MAX_MS);
    return ms;
  }

  private later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  private onEventLine(line: string): void {
    const e = parseFlowLine(line);
    if (!e || e.type === "list") return;
    if (this.replay) {
      if (this.replay.length < REPLAY_LIMIT) this.replay.push(e);
      else this.replayOverflow = true;
    }
    const outcome = this.table.apply(e, this.now());
    this.noteChange(e.service);
    if (outcome) this.emit("outcome", outcome);
    if (outcome === null && e.type === "new") this.scheduleExpire();
  }

  /** conntrack says on stderr when its buffer overflowed: the counts may be off, list again. */
  private checkLost(): void {
    const p = this.events;
    if (!p) return;
    const err = p.stderr();
    // The tail is capped and conntrack repeats the same warning: count characters, not compare text.
    const total = p.stderrTotal?.() ?? err.length;
    if (total !== this.errSeen) {
      const fresh = err.slice(-Math.min(err.length, total - this.errSeen));
      this.errSeen = total;
      if (LOST_EVENTS.test(fresh)) this.lostPending = true;
    }
    if (this.lostPending && !this.listing && this.now() - this.listedAt >= LOST_RESYNC_GAP_MS) {
      this.lostPending = false;
      this.opts.log?.("conntrack lost events (ENOBUFS); listing the flows again");
      this.resync();
    }
  }

  private resync(): void {
    if (!this.running || !this.events) return;
    if (this.listing) {
      this.resyncAgain = true;
      return;
    }
    const next = new FlowTable();
    const t0 = this.now();
    this.listedAt = t0;
    this.replay = [];
    this.replayOverflow = false;
    let proc: LineProcess;
    try {
      proc = this.spawn(FLOW_LIST_ARGV, (line) => {
        const e = parseFlowLine(line);
        if (e?.type === "list") next.apply(e, t0);
      });
    } catch (e) {
      this.replay = null;
      this.opts.log?.(`conntrack -L could not start: ${(e as Error).message}`);
      return;
    }
    this.listing = proc;
    void proc.exited.then((x) => {
      if (this.listing !== proc) return;
      this.listing = null;
      const replay = this.replay ?? [];
      this.replay = null;
      if (!this.running) return;
      if (x.code !== 0) {
        this.opts.log?.(`conntrack -L ${describeExit(x, proc.stderr())}`);
      } else {
        const now = this.now();
        for (const e of replay) next.apply(e, now);
        next.adoptPending(this.table, now);
        const services = new Set([...this.table.services(), ...next.services()]);
        this.table = next;
        this.synced = true;
        for (const s of services) this.noteChange(s);
        this.scheduleExpire();
      }
      if (this.replayOverflow || this.resyncAgain) {
        this.resyncAgain = false;
        this.resync();
      }
    });
  }

  private noteChange(service: string): void {
    if (!this.synced) return;
    this.changed.add(service);
    if (this.flushTimer !== undefined) return;
    // A burst of lines arrives as one chunk: one `counts` event for all of it.
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      const changed = this.changed;
      this.changed = new Set();
      if (changed.size) this.emit("counts", changed);
    }, 0);
  }

  private scheduleExpire(): void {
    const ms = this.synTimeoutMs;
    if (ms === null || this.expireTimer !== undefined || this.table.pendingCount === 0 || !this.running)
      return;
    this.expireTimer = setTimeout(
      () => {
        this.expireTimer = undefined;
        for (const o of this.table.expire(this.now(), ms)) this.emit("outcome", o);
        this.scheduleExpire();
      },
      Math.max(20, Math.round(ms / 4)),
    );
    this.expireTimer.unref();
  }
}
