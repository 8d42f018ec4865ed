import type { RoundResult } from "./probe-types.ts";

// Suspect → fast re-probe (the idea of OpenWrt mwan3's `failure_interval`), the policy half; the
// prober (fping.ts, fping-burst.ts) does the watching and the sending, uplink-state.ts the counting.
//
// - From the RTTs of regular rounds seen while the uplink is up: overdue = max(20 ms,
//   srtt + 4·rttvar, 3 × the largest RTT of the last 25 rounds), used only after 5 rounds with
//   answers and only while it is at most half of `timeout` (else waiting for it gains little over
//   waiting for the timeout itself).
// - A regular round with fewer than `min_targets` answers by then makes the uplink suspect: a burst
//   of `down_after - 1` extra rounds (at most 10), max(interval/4, 10 ms) apart, through the same
//   binding. Each is an ordinary round (lost only when unanswered within `timeout`) and counts for
//   `down_after` in the order rounds are concluded, until any round answers (uplink-state.ts).
// - Only while up with no link problem; one burst in flight; bursts start at least
//   max(1 s, 5 × interval) apart; a false alarm (every burst round answered) that follows the
//   previous one within 2 cool-downs doubles the cool-down (up to 32×), a later one resets it.
//
// Timing, defaults, lab RTTs: the first lost round is overdue 20 ms after it was sent, the burst's
// rounds leave ~20 and ~70 ms after it and time out 500 ms later: down ≈ 570 ms after the first
// lost round instead of 2 × 200 + 500 = 900 ms.
// False alarms, per-round loss p (both targets lost): the regular round after the overdue one is
// handed on right after it when answered, before the burst's timeouts, and ends the suspicion; so
// a fall through a burst needs that round and both burst rounds lost too: p⁴ per round against the
// p³ of three regular rounds, i.e. at most a share p more false transitions (1 % at 10 % probe
// loss with 2 targets), and none from delays alone (a late answer is still a good round).

export const SUSPECT = {
  floorMs: 20,
  rttvarGain: 4,
  maxFactor: 3,
  recentRounds: 25,
  warmupRounds: 5,
  /** Watch only while the overdue time is at most this share of `timeout`. */
  shareOfTimeout: 0.5,
  maxBurstRounds: 10,
  minSpacingMs: 10,
  cooldownMinMs: 1000,
  cooldownRounds: 5,
  maxBackoff: 5,
  /** A false alarm this many cool-downs after the previous one or sooner doubles the cool-down. */
  backoffWithin: 2,
} as const;

export interface SuspectParams {
  intervalMs: number;
  timeoutMs: number;
  downAfter: number;
}

export interface BurstPlan {
  count: number;
  spacingMs: number;
}

export class Suspicion {
  private srtt: number | null = null;
  private rttvar = 0;
  /** Largest answered RTT of each of the last regular rounds with an answer (a ring). */
  private readonly recent: number[] = [];
  private next = 0;
  private samples = 0;
  private threshold: number | null = null;
  private lastBurstAt = -Infinity;
  private backoff = 0;
  private lastFalseAlarmAt = -Infinity;
  private burstFailed = false;
  /** Bursts started, and those that ended with every round answered (for logs and tests). */
  bursts = 0;
  falseAlarms = 0;

  constructor(private readonly p: SuspectParams) {}

  /**
   * Feed every concluded round (in the order they are concluded) with its verdict. RTTs are learnt
   * from regular rounds with `counted` set only (the monitor sets it only while the uplink is up).
   */
  learn(r: RoundResult, v: { good: boolean; counted: boolean }, now: number): void {
    if (r.burst) {
      if (!v.good) this.burstFailed = true;
      if (r.burst.index === r.burst.count) {
        if (this.burstFailed) this.backoff = 0;
        else {
          this.falseAlarms++;
          this.backoff =
            now - this.lastFalseAlarmAt <= SUSPECT.backoffWithin * this.cooldownMs()
              ? Math.min(SUSPECT.maxBackoff, this.backoff + 1)
              : 0;
          this.lastFalseAlarmAt = now;
        }
        this.burstFailed = false;
      }
      return;
    }
    if (!v.counted) return;
    let max = -1;
    for (const x of r.results) {
      const rtt = x.rttMs;
      if (rtt === null) continue;
      if (rtt > max) max = rtt;
      // RFC 6298
      if (this.srtt === null) {
        this.srtt = rtt;
        this.rttvar = rtt / 2;
      } else {
        this.rttvar += (Math.abs(this.srtt - rtt) - this.rttvar) / 4;
        this.srtt += (rtt - this.srtt) / 8;
      }
    }
    if (max < 0) return;
    this.recent[this.next] = max;
    this.next = (this.next + 1) % SUSPECT.recentRounds;
    this.samples++;
    this.threshold = this.compute();
  }

  private compute(): number | null {
    if (this.samples < SUSPECT.warmupRounds || this.srtt === null) return null;
    let max = 0;
    for (const x of this.recent) if (x > max) max = x;
    const t = Math.max(
      SUSPECT.floorMs,
      this.srtt + SUSPECT.rttvarGain * this.rttvar,
      SUSPECT.maxFactor * max,
    );
    return t <= this.p.timeoutMs * SUSPECT.shareOfTimeout ? Math.ceil(t) : null;
  }

  /** ms after a regular round was sent by which `min_targets` answers are expected; null: don't watch. */
  overdueMs(): number | null {
    return this.threshold;
  }

  cooldownMs(): number {
    const base = Math.max(SUSPECT.cooldownMinMs, SUSPECT.cooldownRounds * this.p.intervalMs);
    return base * 2 ** this.backoff;
  }

  /** A regular round is overdue: the burst to send now, or null (not up, too soon, nothing to gain). */
  plan(now: number, uplink: { state: "up" | "down"; linkProblem: string | null }): BurstPlan | null {
    if (uplink.state !== "up" || uplink.linkProblem !== null || this.threshold === null) return null;
    const count = Math.min(SUSPECT.maxBurstRounds, this.p.downAfter - 1);
    if (count < 1 || now < this.lastBurstAt + this.cooldownMs()) return null;
    return { count, spacingMs: Math.max(SUSPECT.minSpacingMs, Math.round(this.p.intervalMs / 4)) };
  }

  /** The prober accepted the burst. */
  started(now: number): void {
    this.lastBurstAt = now;
    this.burstFailed = false;
    this.bursts++;
  }
}
