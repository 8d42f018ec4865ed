import { readFileSync } from "node:fs";

/**
 * How many backend checks may be in flight at once, shared by every checker of the daemon. Each
 * check holds one socket (one fd) until it ends or its timeout fires; at 250,000 backends an
 * unbounded checker would open sockets until `accept`, `nft` pipes and the API fail with EMFILE.
 * The bound is a quarter of the soft fd limit (the rest stays for the API, conntrack readers,
 * child processes), at least 64 and at most 4,096: 4,096 checks of 500 ms are 8,192 checks a second,
 * more SYNs than a shared 2-core box should send, and far from the ephemeral port range
 * (ip_local_port_range, 28,232 ports by default): connect() reuses a port for different
 * destinations, so ports bound the checks of one ADDRESS:PORT only, and those run one at a time.
 */
export const MAX_IN_FLIGHT = 4096;
export const MIN_IN_FLIGHT = 64;

/**
 * How many checks may start a second, shared by every checker. One TCP check costs the daemon
 * about 100 µs of CPU (a socket, an error with its stack when it fails, garbage; measured at
 * 50,000 unreachable backends, 40 % of it in the garbage collector), so an unbounded start rate at
 * 250,000 backends a second keeps the event loop busy for seconds at a time and the API waits.
 * 5,000 a second is about half a core; above that many backends × 1/interval, rounds take longer
 * than the interval (250,000 backends: one round every 50 s) instead of the daemon falling behind.
 */
export const CHECKS_PER_SECOND = 5000;

/** The bound for a process whose /proc/self/limits reads `limits` (none: the default fd limit, 1024). */
export function inFlightBound(limits: string | null): number {
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(limits ?? "")?.[1];
  const fds = soft === undefined ? 1024 : soft === "unlimited" ? Infinity : Number(soft);
  return Math.max(MIN_IN_FLIGHT, Math.min(MAX_IN_FLIGHT, Math.floor(fds / 4)));
}

/** The bound for this process. */
export function defaultInFlightBound(): number {
  try {
    return inFlightBound(readFileSync("/proc/self/limits", "utf8"));
  } catch {
    return inFlightBound(null);
  }
}

/** Hands back its slot; calling it twice frees one slot only. */
export type Release = () => void;

/**
 * A counting semaphore for checks: `acquire` resolves with a release once a slot is free, in the
 * order asked; a cancelled wait leaves the queue and resolves with null.
 *
 * A freed slot is handed on through `defer` (setImmediate), not at once: a check against an
 * address with no route fails within the same tick, so handing slots on synchronously runs the
 * whole queue (tens of thousands of checks) as one chain of microtasks, and the API, the timers
 * and every other socket wait until it ends (seen: 50 s without a timer firing at 50,000 backends).
 */
/**
 * Lets whoever waits for a slot give up (a checker that stops). A plain object, not an AbortSignal:
 * 250,000 checkers wait in the queue at once, and a listener on an AbortSignal costs about a KiB each.
 */
export class WaitToken {
  private onCancel: (() => void) | null = null;
  private done = false;

  get cancelled(): boolean {
    return this.done;
  }

  cancel(): void {
    this.done = true;
    const fn = this.onCancel;
    this.onCancel = null;
    fn?.();
  }

  /** @internal the limiter's hook; null once the wait is over. */
  set(fn: (() => void) | null): void {
    this.onCancel = fn;
  }
}

interface Waiter {
  take: ((r: Release) => void) | null;
}

export class CheckLimiter {
  private running = 0;
  /**
   * Waiters in order, from `head`; an aborted one is left in place with `take` null. An array, not
   * a Set: V8 iterates a Set past its deleted entries, so taking the first of a Set that 50,000
   * waiters went through costs more each time (seen: 6 s of CPU in 40 s).
   */
  private queue: Waiter[] = [];
  private head = 0;
  private live = 0;
  private peak = 0;
  /** GCRA: the time (ms) at which the start rate is back to zero; a start is allowed up to `slack` before it. */
  private tat = 0;
  private readonly spacing: number;
  private readonly slack: number;
  private rateTimer: ReturnType<typeof setTimeout> | undefined;
  private handing = false;

  /**
   * `max` checks in flight, at most `perSecond` started a second (bursts of a twentieth of a
   * second's worth; Infinity: no rate bound).
   */
  constructor(
    readonly max: number,
    readonly perSecond = Infinity,
    private readonly defer: (fn: () => void) => void = (fn) => void setImmediate(fn),
  ) {
    if (!Number.isInteger(max) || max < 1) throw new Error("max must be a positive integer");
    if (!(perSecond > 0)) throw new Error("perSecond must be positive");
    this.spacing = 1000 / perSecond;
    this.slack = Math.max(1, perSecond / 20) * this.spacing;
  }

  acquire(token?: WaitToken): Promise<Release | null> {
    if (token?.cancelled) return Promise.resolve(null);
    if (this.running < this.max && this.live === 0 && this.rateAllows()) return Promise.resolve(this.grant());
    return new Promise((resolve) => {
      const w: Waiter = { take: null };
      w.take = (r: Release) => {
        token?.set(null);
        resolve(r);
      };
      token?.set(() => {
        w.take = null;
        this.live--;
        resolve(null);
      });
      this.queue.push(w);
      this.live++;
      this.handOnSoon();
    });
  }

  /** Checks in flight now. */
  get inFlight(): number {
    return this.running;
  }

  /** Checks waiting for a slot now. */
  get queued(): number {
    return this.live;
  }

  /** The most checks ever in flight at once. */
  get peakInFlight(): number {
    return this.peak;
  }

  /** One hand-on per turn of the event loop, however many slots were freed in it. */
  private handOnSoon(): void {
    if (this.handing) return;
    this.handing = true;
    this.defer(() => {
      this.handing = false;
      this.handOn();
    });
  }

  /** Slots are free: the longest waiters get them, as the rate allows. */
  private handOn(): void {
    while (this.running < this.max && this.live > 0) {
      if (!this.rateAllows()) {
        this.rateTimer ??= setTimeout(
          () => {
            this.rateTimer = undefined;
            this.handOn();
          },
          Math.max(1, Math.ceil(this.tat - this.slack - Date.now())),
        );
        return;
      }
      const w = this.queue[this.head++];
      const take = w?.take;
      if (!take) continue;
      this.live--;
      take(this.grant());
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /** May a check start now? (Generic cell rate algorithm: no state but one timestamp.) */
  private rateAllows(): boolean {
    if (this.perSecond === Infinity) return true;
    return Date.now() >= this.tat - this.slack;
  }

  private grant(): Release {
    if (this.perSecond !== Infinity) this.tat = Math.max(this.tat, Date.now()) + this.spacing;
    this.running++;
    if (this.running > this.peak) this.peak = this.running;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.running--;
      if (this.live > 0) this.handOnSoon();
    };
  }
}

/**
 * Where in its interval a backend's checks fall: a fixed offset in [0, interval) from a hash of
 * its service and address (FNV-1a), so 250,000 checkers started together do not all connect in the
 * same millisecond, and a restart keeps each backend's place.
 */
export function checkPhase(key: string, intervalMs: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return ((h >>> 0) / 2 ** 32) * Math.max(0, intervalMs);
}
