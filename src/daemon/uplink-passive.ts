import { Counter, Gauge, type Registry } from "prom-client";
import { uplinkPassiveOf, type Config } from "../config/schema.ts";
import {
  describeExit,
  spawnPolledLines,
  stopProcess,
  type LineProcess,
  type SpawnLines,
} from "../health/probe-process.ts";
import type { PassiveCheck, PassiveOutcome } from "../health/types.ts";
import { UplinkPassive, type PassiveStats, type PassiveUplink } from "../health/uplink-passive.ts";
import { parseUplinkFlowLine, uplinkEventsArgv } from "../system/conntrack-uplink.ts";
import type { Log } from "./log.ts";

export interface UplinkPassiveHooks {
  log: Log;
  /** Hand a suspicion to the uplink's monitor; false when it declined (the outcome never comes). */
  suspect(name: string, check: PassiveCheck): boolean;
}

export interface UplinkPassiveOptions {
  /** How conntrack is started; undefined: the real one. */
  spawn?: SpawnLines;
  now?: () => number;
  /** Where the passive metrics go (the daemon's registry). */
  registry?: Registry;
}

const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 30_000;
/** Connections unanswered for `timeout` are counted this often (the suspicions have their own timer). */
const EXPIRE_EVERY_MS = 1000;
/** An event stamped further than this from our clock is taken as seen now. */
const MAX_SKEW_MS = 5000;
/**
 * conntrack's output is read this often while an uplink shows the start of a silence (from the
 * tracker's watchAt), at the calm cadence while every uplink answers (sooner when an unanswered
 * connection reaches watchAt meanwhile), backing off to POLL_IDLE_MS while conntrack has nothing
 * to say: the cost stays flat however many connections come and go (one read per poll, not one
 * per event), and the events' own timestamps keep the timing exact. The calm cadence is POLL_MS
 * by default and POLL_CALM_MS with `balance.conntrack_events: minimal`, the setting that trades
 * for CPU: the wake-ups, not the lines, were most of the daemon's cost (bench/RESULTS.md,
 * "Passive uplink health: CPU"), but reading every 100 ms while calm delayed detection: a median
 * of 306 ms against 247 at 25 ms (40 and 30 blackhole trials at 50 new connections/s, load 12–18;
 * bench/RESULTS.md, "calm cadence"), more than the ≤ 50 ms the schedule alone explains.
 */
const POLL_MS = 25;
const POLL_CALM_MS = 100;
const POLL_IDLE_MS = 100;

/**
 * The daemon's passive health of its uplinks: one `conntrack -E` while at least two uplinks are
 * configured and one of them has `passive` on, its events fed to the pure UplinkPassive, and each
 * suspicion handed to the uplink's monitor, which re-probes and decides. Observes only: the
 * monitor's down goes through the daemon's usual path (reconciler → split elements).
 */
export class UplinkPassiveWatch {
  readonly tracker = new UplinkPassive();
  private proc: LineProcess | null = null;
  private running = false;
  private wanted = false;
  private restartMs = RESTART_MIN_MS;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private checkTimer: ReturnType<typeof setTimeout> | undefined;
  private checkAt = Infinity;
  private checkQueued = false;
  private expireTimer: ReturnType<typeof setInterval> | undefined;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private got = false;
  /** Read cadence while every uplink answers (see POLL_CALM_MS). */
  private calmMs = POLL_MS;
  private readonly spawn: SpawnLines;
  private readonly now: () => number;
  private names: string[] = [];
  private readonly metrics: {
    answered: Counter<"uplink">;
    unanswered: Counter<"uplink">;
    suspicions: Counter<"uplink" | "outcome">;
    suspect: Gauge<"uplink">;
  } | null;
  /** Totals already exported per uplink (the tracker's counts only grow while the daemon runs). */
  private readonly exported = new Map<string, { answered: number; unanswered: number }>();

  constructor(
    private readonly hooks: UplinkPassiveHooks,
    opts: UplinkPassiveOptions = {},
  ) {
    this.spawn = opts.spawn ?? spawnPolledLines;
    // Wall-clock ms: the kernel's event timestamps are on that clock.
    this.now = opts.now ?? Date.now;
    this.metrics = opts.registry ? this.declareMetrics(opts.registry) : null;
  }

  /**
   * Follow a (new) config and the marks its plan gave the uplinks (name → conntrack mark): start
   * conntrack when passive health has something to watch, stop it when not.
   */
  configure(c: Config, marks: ReadonlyMap<string, number>): void {
    const ups: PassiveUplink[] = [];
    for (const [name, u] of Object.entries(c.uplinks ?? {})) {
      const mark = marks.get(name);
      if (mark === undefined) continue;
      const p = uplinkPassiveOf(u);
      ups.push({
        name,
        mark,
        params: p
          ? { suspectAfter: p.suspect_after, minSilenceMs: p.min_silence, timeoutMs: p.timeout }
          : null,
      });
    }
    this.names = ups.map((u) => u.name);
    this.calmMs = c.balance.conntrack_events === "minimal" ? POLL_CALM_MS : POLL_MS;
    this.tracker.configure(ups, c.mark_mask);
    this.wanted = ups.length >= 2 && this.tracker.active;
    if (this.running) this.follow();
  }

  start(): void {
    this.running = true;
    this.follow();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.halt();
  }

  /** The uplink's state as the daemon sees it (a change starts its streak afresh). */
  setUp(name: string, up: boolean): void {
    this.tracker.setUp(name, up);
  }

  /** What the monitor made of a suspicion. */
  outcome(o: PassiveOutcome): void {
    if (o.result === "suspect") return;
    this.tracker.outcome(o.name, o.result, this.now());
    this.metrics?.suspicions.inc({ uplink: o.name, outcome: o.result });
    this.queueCheck();
  }

  /** Status fields of an uplink; null when passive health does not watch it. */
  stats(name: string): PassiveStats | null {
    return this.proc ? this.tracker.stats(name) : null;
  }

  private follow(): void {
    if (this.wanted && this.running) {
      if (!this.proc && this.restartTimer === undefined) this.startEvents();
      if (!this.expireTimer) {
        this.expireTimer = setInterval(() => this.runCheck(), EXPIRE_EVERY_MS);
        this.expireTimer.unref();
      }
    } else void this.halt();
  }

  private async halt(): Promise<void> {
    clearTimeout(this.restartTimer);
    clearTimeout(this.checkTimer);
    clearInterval(this.expireTimer);
    clearTimeout(this.pollTimer);
    this.restartTimer = this.checkTimer = this.expireTimer = this.pollTimer = undefined;
    this.checkAt = Infinity;
    const p = this.proc;
    this.proc = null;
    if (p) await stopProcess(p, 1000);
  }

  private startEvents(): void {
    let proc: LineProcess;
    try {
      proc = this.spawn(uplinkEventsArgv(), (line) => this.onLine(line));
    } catch (e) {
      this.hooks.log.warn(
        { reason: "passive health" },
        `conntrack -E could not start: ${(e as Error).message}`,
      );
      this.retry();
      return;
    }
    this.proc = proc;
    if (proc.poll) this.schedulePoll(POLL_MS);
    const startedAt = this.now();
    void proc.exited.then((e) => {
      if (this.proc !== proc) return;
      this.proc = null;
      if (!this.running || !this.wanted) return;
      if (this.now() - startedAt > RESTART_MAX_MS) this.restartMs = RESTART_MIN_MS;
      this.hooks.log.warn(
        { reason: "passive health" },
        `conntrack -E ${describeExit(e, proc.stderr())}; restarting in ${this.restartMs} ms`,
      );
      this.retry();
    });
  }

  private retry(): void {
    const wait = this.restartMs;
    this.restartMs = Math.min(this.restartMs * 2, RESTART_MAX_MS);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.running && this.wanted) this.startEvents();
    }, wait);
    this.restartTimer.unref();
  }

  /** Read what conntrack printed meanwhile (output read on demand), then again soon. */
  private schedulePoll(ms: number): void {
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      const p = this.proc;
      if (!p?.poll || !this.running) return;
      this.got = false;
      p.poll();
      if (!this.got) this.schedulePoll(Math.min(POLL_IDLE_MS, ms * 2));
      else {
        const wait = this.tracker.watchAt() - this.now();
        this.schedulePoll(Math.min(this.calmMs, Math.max(POLL_MS, wait)));
      }
    }, ms);
    this.pollTimer.unref();
  }

  private onLine(line: string): void {
    this.got = true;
    const e = parseUplinkFlowLine(line);
    if (!e) return;
    // The kernel's time of the event, unless the clocks disagree (a step of the wall clock).
    const now = this.now();
    const at = e.at !== undefined && Math.abs(now - e.at) < MAX_SKEW_MS ? Math.min(e.at, now) : now;
    if (this.tracker.event(e, at)) this.queueCheck();
  }

  /** Once per batch of lines (they arrive in chunks), after the chunk is handled. */
  private queueCheck(): void {
    if (this.checkQueued) return;
    this.checkQueued = true;
    setImmediate(() => {
      this.checkQueued = false;
      this.runCheck();
    });
  }

  private runCheck(): void {
    if (!this.running || !this.proc) return;
    // A timer's check reads first: what conntrack said meanwhile may settle it.
    this.proc.poll?.();
    const now = this.now();
    const { suspects, nextAt } = this.tracker.check(now);
    for (const s of suspects) {
      const name = s.uplink;
      const first = s.unanswered;
      const check: PassiveCheck = {
        evidence: () => {
          const st = this.tracker.stats(name);
          const n = Math.max(first, st?.streak ?? 0);
          const ms = Math.round(this.tracker.silentMs(name, this.now()) ?? s.silentMs);
          return `${n} of ${n} new connections unanswered for ${ms} ms`;
        },
      };
      if (!this.hooks.suspect(name, check)) this.tracker.outcome(name, "cleared", now);
    }
    this.syncMetrics();
    if (nextAt !== null) this.checkAtTime(nextAt);
  }

  private checkAtTime(at: number): void {
    if (at >= this.checkAt && this.checkTimer !== undefined) return;
    clearTimeout(this.checkTimer);
    this.checkAt = at;
    this.checkTimer = setTimeout(
      () => {
        this.checkTimer = undefined;
        this.checkAt = Infinity;
        this.runCheck();
      },
      Math.max(1, Math.ceil(at - this.now())),
    );
    this.checkTimer.unref();
  }

  private declareMetrics(registry: Registry) {
    const registers = [registry];
    return {
      answered: new Counter({
        name: "nflb_uplink_passive_answered_total",
        help: "new TCP/UDP connections through the uplink that got an answer (conntrack events)",
        labelNames: ["uplink"],
        registers,
      }),
      unanswered: new Counter({
        name: "nflb_uplink_passive_unanswered_total",
        help: "new TCP/UDP connections through the uplink left without an answer for passive.timeout",
        labelNames: ["uplink"],
        registers,
      }),
      suspicions: new Counter({
        name: "nflb_uplink_passive_suspicions_total",
        help: "passive suspicions settled by a re-probe, by outcome (confirmed: taken down; cleared)",
        labelNames: ["uplink", "outcome"],
        registers,
      }),
      suspect: new Gauge({
        name: "nflb_uplink_passive_suspect",
        help: "1 while a passive suspicion of the uplink is being re-probed",
        labelNames: ["uplink"],
        registers,
        collect: () => this.syncMetrics(),
      }),
    };
  }

  private syncMetrics(): void {
    const m = this.metrics;
    if (!m) return;
    for (const name of this.names) {
      const st = this.tracker.stats(name);
      if (!st) continue;
      const seen = this.exported.get(name) ?? { answered: 0, unanswered: 0 };
      if (st.answered > seen.answered) m.answered.inc({ uplink: name }, st.answered - seen.answered);
      if (st.unanswered > seen.unanswered)
        m.unanswered.inc({ uplink: name }, st.unanswered - seen.unanswered);
      this.exported.set(name, { answered: st.answered, unanswered: st.unanswered });
      m.suspect.set({ uplink: name }, st.suspect ? 1 : 0);
    }
  }
}
