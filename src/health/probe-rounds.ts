import type { Clock, TimerId } from "./probe-clock.ts";
import type { RoundResult, RoundSink } from "./probe-types.ts";

interface Pending {
  seq: number;
  startedAt: number;
  deadline: number;
  probed: Set<string>;
  answers: Map<string, number | null>;
  error: string | undefined;
  unprobed: boolean;
  done: boolean;
}

export interface CollectorHooks {
  /** Called before rounds are concluded at their deadline: read any output still waiting. */
  beforeExpire?: () => void;
  /**
   * A round reached its deadline without a single report (no answer, no timeout). Return why when
   * that is the prober's fault (the round is then unprobed), undefined when it counts as lost.
   */
  silent?: (startedAt: number) => string | undefined;
}

/**
 * Collects per-target answers into rounds and hands rounds on strictly in `seq` order. A round is
 * concluded when every probed target has answered or timed out, or at its deadline (a safety net
 * for answers that never come: a dead or stalled probe process prints nothing at all).
 */
export class RoundCollector {
  private readonly pending = new Map<number, Pending>();
  private timer: TimerId | undefined;
  private timerAt = Infinity;
  private lastEmitted = -1;

  constructor(
    private readonly targets: readonly string[],
    private readonly clock: Clock,
    private readonly sink: RoundSink,
    private readonly hooks: CollectorHooks = {},
  ) {}

  /** Open round `seq`. `probed` are the targets a probe was actually sent to; the rest count as lost. */
  open(
    seq: number,
    startedAt: number,
    deadline: number,
    probed: readonly string[],
    error?: string,
    unprobed = false,
  ): void {
    if (seq <= this.lastEmitted || this.pending.has(seq)) return;
    this.pending.set(seq, {
      seq,
      startedAt,
      deadline,
      probed: new Set(probed),
      answers: new Map(),
      error,
      unprobed: unprobed && probed.length === 0,
      done: probed.length === 0,
    });
    this.flush();
    this.arm();
  }

  has(seq: number): boolean {
    return this.pending.has(seq);
  }

  /** Answers (not timeouts) so far of a round still held here; undefined once handed on or unknown. */
  answered(seq: number): number | undefined {
    const p = this.pending.get(seq);
    if (!p) return undefined;
    let n = 0;
    for (const rtt of p.answers.values()) if (rtt !== null) n++;
    return n;
  }

  /** Record an answer (rtt) or a timeout (null). Late or unknown reports are ignored. */
  report(seq: number, target: string, rttMs: number | null): void {
    const p = this.pending.get(seq);
    if (!p || p.done || !p.probed.has(target) || p.answers.has(target)) return;
    p.answers.set(target, rttMs);
    if (p.answers.size === p.probed.size) {
      p.done = true;
      this.flush();
    }
  }

  /** New deadlines for the rounds still waiting (`deadlineOf` returns undefined to keep one). */
  reschedule(deadlineOf: (seq: number) => number | undefined): void {
    for (const p of this.pending.values()) {
      if (p.done) continue;
      p.deadline = deadlineOf(p.seq) ?? p.deadline;
    }
    this.arm();
  }

  /**
   * Conclude every pending round now, e.g. because the probe process is gone. With `unprobed`, a
   * round nothing was heard about is marked so: the failure was the prober's, not the link's.
   */
  concludeAll(error?: string, unprobed = false): void {
    for (const p of this.pending.values()) {
      if (p.done) continue;
      p.done = true;
      if (error && p.answers.size === 0) {
        p.error ??= error;
        if (unprobed) p.unprobed = true;
      }
    }
    this.flush();
    this.disarm();
  }

  /** Forget rounds still waiting for answers (the prober is going away); concluded ones are handed on. */
  discardPending(): void {
    for (const p of [...this.pending.values()]) if (!p.done) this.pending.delete(p.seq);
    this.flush();
    this.disarm();
  }

  private expire(): void {
    const now = this.clock.now();
    const due = () => [...this.pending.values()].filter((p) => !p.done && p.deadline <= now);
    if (due().length > 0) this.hooks.beforeExpire?.();
    for (const p of due()) {
      p.done = true;
      if (p.answers.size > 0 || p.probed.size === 0) continue;
      const why = this.hooks.silent?.(p.startedAt);
      if (why !== undefined) {
        p.error ??= why;
        p.unprobed = true;
      }
    }
    this.flush();
    this.arm();
  }

  private flush(): void {
    while (this.pending.size > 0) {
      const seq = Math.min(...this.pending.keys());
      const p = this.pending.get(seq);
      if (!p || !p.done) return;
      this.pending.delete(seq);
      this.lastEmitted = seq;
      this.sink(this.result(p));
    }
  }

  private result(p: Pending): RoundResult {
    const r: RoundResult = {
      seq: p.seq,
      startedAt: p.startedAt,
      at: this.clock.now(),
      results: this.targets.map((target) => ({ target, rttMs: p.answers.get(target) ?? null })),
    };
    if (p.error !== undefined) r.error = p.error;
    if (p.unprobed) r.unprobed = true;
    return r;
  }

  private arm(): void {
    let next = Infinity;
    for (const p of this.pending.values()) if (!p.done && p.deadline < next) next = p.deadline;
    if (next === this.timerAt) return;
    this.disarm();
    if (next === Infinity) return;
    this.timerAt = next;
    this.timer = this.clock.setTimeout(() => {
      // After a stalled event loop this timer runs before the pipe/socket reads that hold the
      // answers: one more turn lets them in first, so a slow Node is not mistaken for a dead link.
      this.timer = this.clock.setTimeout(() => {
        this.timer = undefined;
        this.timerAt = Infinity;
        this.expire();
      }, 0);
    }, next - this.clock.now());
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}
