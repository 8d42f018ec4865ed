import type { Clock, TimerId } from "./probe-clock.ts";

// Every wake-up of the daemon costs far more than the work it does: on the lab's VM a timer that
// runs an empty callback costs ~0.2 ms of CPU, and 8 uplinks probed every 200 ms once woke the
// process ~200 times a second (a pipe read per fping line, a tick per round, per-uplink timers).
// Probers therefore ask for wake-ups here, each with a slack it can live with, and one timer serves
// every request that is due by then. Probers also start their fpings on a common grid
// (`gridStart`), so the rounds of all uplinks are sent together and their looks fall due together:
// one wake-up per interval for all uplinks in the steady state.

/** Node's timer clock and ours differ by up to a millisecond: a request this close to due is due. */
const EARLY_MS = 1;

interface Request {
  at: number;
  latest: number;
  fn: () => void;
}

export type CancelWake = () => void;

export class WakeGroup {
  private readonly requests = new Set<Request>();
  private readonly wakeListeners = new Set<() => void>();
  private timer: TimerId | undefined;
  private timerAt = Infinity;
  private firing = false;

  constructor(private readonly clock: Clock) {}

  /**
   * Run `fn` once, no earlier than `at` (give or take a millisecond) and normally no later than
   * `at + slackMs`, in the same wake-up as every other request due by then. Returns the cancel.
   */
  at(at: number, slackMs: number, fn: () => void): CancelWake {
    const r: Request = { at, latest: at + Math.max(0, slackMs), fn };
    this.requests.add(r);
    if (!this.firing) this.arm();
    return () => {
      if (this.requests.delete(r) && !this.firing) this.arm();
    };
  }

  /**
   * Call `fn` after every wake-up: a moment the process is awake anyway. Cheap periodic checks (the
   * link watcher's carrier counters) ride on it instead of waking the process themselves.
   */
  onWake(fn: () => void): () => void {
    this.wakeListeners.add(fn);
    return () => void this.wakeListeners.delete(fn);
  }

  get pending(): number {
    return this.requests.size;
  }

  /**
   * Fire when the most urgent request can wait no longer, or earlier when nothing else falls due
   * before that: at the latest `at` that is not after the earliest `latest`.
   */
  private arm(): void {
    let latest = Infinity;
    for (const r of this.requests) if (r.latest < latest) latest = r.latest;
    let fireAt = -Infinity;
    for (const r of this.requests) if (r.at <= latest && r.at > fireAt) fireAt = r.at;
    if (latest === Infinity) fireAt = Infinity;
    if (fireAt === this.timerAt) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = fireAt;
    if (fireAt === Infinity) return;
    // Whole milliseconds, rounded up: Node's timers count in them, and one that came a fraction early
    // would find nothing due and cost a second wake-up.
    this.timer = this.clock.setTimeout(() => this.fire(), Math.ceil(fireAt - this.clock.now()));
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.clock.now();
    const due = [...this.requests].filter((r) => r.at <= now + EARLY_MS).sort((a, b) => a.at - b.at);
    this.firing = true;
    try {
      for (const r of due) {
        // A request may cancel another one due in the same wake-up.
        if (!this.requests.delete(r)) continue;
        r.fn();
      }
      for (const fn of this.wakeListeners) fn();
    } finally {
      this.firing = false;
      this.arm();
    }
  }
}

const groups = new WeakMap<Clock, WakeGroup>();

/** The wake group of a clock: one per process for the real clock, one per manual clock in tests. */
export function wakeGroupFor(clock: Clock): WakeGroup {
  let g = groups.get(clock);
  if (!g) {
    g = new WakeGroup(clock);
    groups.set(clock, g);
  }
  return g;
}

/** The first multiple of `periodMs` at or after `now`: where probers start, so they run in phase. */
export function gridStart(now: number, periodMs: number): number {
  if (!(periodMs > 0)) return now;
  return Math.ceil(now / periodMs) * periodMs;
}
