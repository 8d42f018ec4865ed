/**
 * When a node may keep its buckets in the kernel, and when it may claim more. Pure; times are
 * milliseconds on one monotonic clock (performance.now()). The argument is in docs/CLUSTER.md.
 */
export interface FenceTiming {
  /** Configured lease (ms). */
  leaseMs: number;
  /** TTL etcd granted (ms); etcd rounds up to whole seconds and to its own minimum. */
  grantedMs: number;
  /** Kept between the kernel's expiry and the earliest moment etcd can expire the lease. */
  marginMs: number;
  /** How often keep-alives, kernel renewals and witness reports run. */
  tickMs: number;
}

export function fenceTiming(leaseMs: number, grantedMs = leaseMs): FenceTiming {
  const tickMs = Math.max(100, Math.min(500, Math.floor(leaseMs / 4)));
  const marginMs = Math.max(150, Math.min(500, Math.floor(leaseMs / 6)));
  return { leaseMs, grantedMs, marginMs, tickMs };
}

/** A witness report older than this is not evidence of anything. */
export const reportMaxAge = (t: FenceTiming) => 3 * t.tickMs;

/** How long one outage-mode renewal lets the kernel accept (the same bound as a normal one). */
export const outageHold = (t: FenceTiming) => Math.min(t.leaseMs, t.grantedMs) - t.marginMs;

/**
 * The latest moment the kernel may still accept a node's buckets after a keep-alive that was
 * SENT at `sentAt` succeeded: etcd cannot expire the lease before sentAt + TTL.
 */
export function leaseFence(t: FenceTiming, sentAt: number): number {
  return sentAt + Math.min(t.leaseMs, t.grantedMs) - t.marginMs;
}

export interface WitnessReport {
  node: string;
  /** The sender can renew its lease right now. */
  etcd: boolean;
  receivedAt: number;
}

/**
 * Outage mode: this node cannot reach etcd, yet may keep renewing its buckets, because every
 * other member it last knew of reported (recently) that it cannot reach etcd either. Then etcd
 * is down for the whole cluster: no lease can expire and nobody can claim anything. One member
 * reporting "etcd ok", or staying silent, means this node may be the one cut off: fence.
 */
export function outageRenewAllowed(
  t: FenceTiming,
  me: string,
  view: readonly string[],
  reports: ReadonlyMap<string, WitnessReport>,
  now: number,
): boolean {
  const others = view.filter((m) => m !== me);
  if (others.length === 0) return false;
  return others.every((m) => {
    const r = reports.get(m);
    return r !== undefined && !r.etcd && now - r.receivedAt <= reportMaxAge(t);
  });
}

/**
 * A node that told others "no etcd" may have let them renew on that word for up to
 * reportMaxAge + outageHold after it: it claims nothing until that has passed.
 */
export function claimAllowed(t: FenceTiming, lastNoEtcdReportAt: number, now: number): boolean {
  return now - lastNoEtcdReportAt >= reportMaxAge(t) + outageHold(t) + t.marginMs;
}

export type FenceMode = "normal" | "outage" | "fenced";

/** What the kernel should be told at `now`: keep accepting until `until`, or nothing (let it lapse). */
export function renewal(
  t: FenceTiming,
  s: { lastOkSentAt: number | null; etcdOk: boolean; outageAllowed: boolean },
  now: number,
): { mode: FenceMode; until: number | null } {
  const minUseful = Math.min(50, t.tickMs / 2);
  if (s.etcdOk && s.lastOkSentAt !== null) {
    const until = leaseFence(t, s.lastOkSentAt);
    if (until - now > minUseful) return { mode: "normal", until };
  }
  if (!s.etcdOk && s.outageAllowed) return { mode: "outage", until: now + outageHold(t) };
  return { mode: "fenced", until: null };
}
