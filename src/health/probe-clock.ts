/**
 * Time as the health code sees it, injected so state machines and probers run under a manual clock
 * in unit tests. `now()` is epoch milliseconds but monotonic (a wall-clock step from NTP must not
 * make every pending probe time out at once).
 */
export interface Clock {
  now(): number;
  /** Wall-clock epoch milliseconds, for timestamps other programs print (fping -D). */
  wallNow?(): number;
  setTimeout(fn: () => void, ms: number): TimerId;
  clearTimeout(id: TimerId): void;
}

/** Opaque: whatever the clock handed out. */
export type TimerId = unknown;

export const realClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  wallNow: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, Math.max(0, ms));
    // Probe timers alone must not keep a CLI or a test process alive.
    t.unref();
    return t;
  },
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
};

/** A clock that moves only when told to; timers fire in time order inside `advance`. */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 1_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  wallNow(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerId {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(id: TimerId): void {
    this.timers.delete(id as number);
  }

  /** Move time forward by `ms`, firing every timer that falls due, including ones set meanwhile. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = end;
  }

  get pending(): number {
    return this.timers.size;
  }
}
