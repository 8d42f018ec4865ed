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
 * order asked; an aborted wait leaves the queue and resolves with null. Pure: no timers.
 */
export class CheckLimiter {
  private running = 0;
  private readonly waiting = new Set<(r: Release) => void>();
  private peak = 0;

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new Error("max must be a positive integer");
  }

  acquire(signal?: AbortSignal): Promise<Release | null> {
    if (signal?.aborted) return Promise.resolve(null);
    if (this.running < this.max && this.waiting.size === 0) return Promise.resolve(this.grant());
    return new Promise((resolve) => {
      const onAbort = () => {
        this.waiting.delete(take);
        resolve(null);
      };
      const take = (r: Release) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(r);
      };
      this.waiting.add(take);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Checks in flight now. */
  get inFlight(): number {
    return this.running;
  }

  /** Checks waiting for a slot now. */
  get queued(): number {
    return this.waiting.size;
  }

  /** The most checks ever in flight at once. */
  get peakInFlight(): number {
    return this.peak;
  }

  private grant(): Release {
    this.running++;
    if (this.running > this.peak) this.peak = this.running;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.running--;
      // Sets iterate in insertion order: the longest waiter goes first.
      const next = this.waiting.values().next();
      if (!next.done) {
        this.waiting.delete(next.value);
        next.value(this.grant());
      }
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
