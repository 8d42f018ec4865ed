import type { ProbeConfig } from "../config/schema.ts";
import type { HealthState, UplinkObservation } from "./types.ts";
import { medianRtt, type RoundResult } from "./probe-types.ts";
import { initialQuality, updateQuality, type QualityState } from "./uplink-quality.ts";

// The per-uplink state machine. Pure: rounds and link events in, the next state out.
//
// - A round fails when fewer than `min_targets` targets answered within `timeout`, or when the
//   median RTT of those that did is above `max_rtt`.
// - up → down after `down_after` failed rounds in a row, or when the loss over the last 10 rounds
//   (a full window) is above `max_loss`, or at once on a link problem (no carrier, no address…).
// - down → up after `up_after` good rounds in a row, counted only from rounds sent after the link
//   came back, and only while the loss over the window is within `max_loss`.
// - Recovery marks (pfSense/dpinger's low alarms): a down uplink's rounds count as good only with
//   a median RTT within `recover_rtt`, and it comes back only while the window's loss is within
//   `recover_loss` and the jitter within `recover_jitter` (each defaults to its max_ key), so a link
//   that went down at the high mark does not bounce straight back just below it.
// - `max_jitter`: up → down when the smoothed jitter (over a full window) is above it.
// - Start: up. `apply` installs everything as healthy and a restarted daemon must not shift
//   traffic away from working links, so an uplink starts up and `down_after` rounds (or a link
//   event) decide; a dead one is down within down_after × interval + timeout.
// - Burst rounds (`r.burst`, sent at once when a regular round is overdue: suspect.ts) can only add
//   failures to the streak, in the order rounds are concluded, and only while the suspicion is
//   live: while up, and until a good round (regular or burst) of the overdue round's seq or later
//   is concluded, or the burst's last round is. down_after failures in a row then take the uplink
//   down; a suspicion that ends without that takes its failures back out of the streak, so they
//   never join later regular failures. Rounds leave the prober in seq order, so the regular round
//   after the overdue one, when answered, is concluded before the re-probes can time out: a burst
//   takes an uplink down only when that round is lost too (an outage longer than one interval).
//   Burst rounds stay out of the loss window, the RTT figures and the quality: those sample the
//   link at the regular cadence, and rounds sent only when something already looks wrong would
//   overstate loss (and shrink the window's 10 rounds to well under 10 intervals), i.e. more false
//   transitions by max_loss. While down they count for nothing: recovery keeps the regular cadence
//   and up_after.
// - Unprobed rounds (`r.unprobed`: the prober itself failed — fping exited, stalled or printed
//   garbage) say nothing about the link: they count for nothing, the state stays, and `probeError`
//   says why until a round is probed again.

export const LOSS_WINDOW = 10;

export interface HealthParams {
  downAfter: number;
  upAfter: number;
  minTargets: number;
  maxRttMs: number | null;
  maxLoss: number | null;
  /** Low marks for the way back up (default: the max_ ones); see the header. */
  recoverRttMs?: number | null;
  recoverLoss?: number | null;
  maxJitterMs?: number | null;
  recoverJitterMs?: number | null;
}

export function healthParams(p: ProbeConfig): HealthParams {
  return {
    downAfter: p.down_after,
    upAfter: p.up_after,
    minTargets: Math.min(p.min_targets, Math.max(1, p.targets.length)),
    maxRttMs: p.max_rtt,
    maxLoss: p.max_loss,
    recoverRttMs: p.recover_rtt ?? p.max_rtt,
    recoverLoss: p.recover_loss ?? p.max_loss,
    maxJitterMs: p.max_jitter,
    recoverJitterMs: p.recover_jitter ?? p.max_jitter,
  };
}

export interface UplinkHealth {
  name: string;
  iface: string;
  state: HealthState;
  reason: string;
  since: number;
  failStreak: number;
  goodStreak: number;
  /** Every round of the current fail streak had no answer at all (for the reason's wording). */
  streakSilent: boolean;
  /** Why the latest failed round failed. */
  lastFailure: string | null;
  /** The suspicions (bursts) of regular rounds up to this seq are over. */
  suspicionOverSeq: number;
  /** Failures the live suspicion's burst rounds added to failStreak. */
  burstFailures: number;
  /** Probes sent and lost per round, oldest first, at most LOSS_WINDOW. */
  window: { sent: number; lost: number }[];
  srttMs: number | null;
  jitterMs: number | null;
  lastRttMs: number | null;
  /** The current link problem ("carrier lost on wan1"), null when the link is fine. */
  linkProblem: string | null;
  /** Rounds sent before this moment say nothing about the link as it is now. */
  linkOkSince: number;
  quality: QualityState;
  /** Why the prober cannot probe now (its rounds count for nothing); null while it works. */
  probeError: string | null;
}

export interface RoundVerdict {
  seq: number;
  good: boolean;
  /** Why it failed; for a good round, a short summary. */
  why: string;
  answered: number;
  sent: number;
  medianMs: number | null;
  /** false when the round was sent before the link came back: it counts for neither streak. */
  counted: boolean;
}

export interface Step {
  next: UplinkHealth;
  changed: boolean;
  verdict?: RoundVerdict;
}

export function initialHealth(name: string, iface: string, at: number): UplinkHealth {
  return {
    name,
    iface,
    state: "up",
    reason: "starting: assumed up until probes or link events say otherwise",
    since: at,
    failStreak: 0,
    goodStreak: 0,
    streakSilent: true,
    lastFailure: null,
    suspicionOverSeq: -1,
    burstFailures: 0,
    window: [],
    srttMs: null,
    jitterMs: null,
    lastRttMs: null,
    linkProblem: null,
    linkOkSince: -Infinity,
    quality: initialQuality(),
    probeError: null,
  };
}

export function lossRatio(h: Pick<UplinkHealth, "window">): number {
  let sent = 0;
  let lost = 0;
  for (const w of h.window) {
    sent += w.sent;
    lost += w.lost;
  }
  return sent === 0 ? 0 : lost / sent;
}

/** "0.12 ms", "4.5 ms", "312 ms" */
export function fmtMs(ms: number): string {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

export function judgeRound(
  r: RoundResult,
  p: HealthParams,
  linkProblem: string | null,
  /** The uplink is down: its RTT must be within the low mark (recover_rtt) for a good round. */
  down = false,
): Omit<RoundVerdict, "counted"> {
  const sent = r.results.length;
  const answered = r.results.filter((x) => x.rttMs !== null).length;
  const medianMs = medianRtt(r.results);
  const base = { seq: r.seq, answered, sent, medianMs };
  if (linkProblem) return { ...base, good: false, why: linkProblem };
  if (answered === 0 && r.error) return { ...base, good: false, why: r.error };
  if (answered < p.minTargets) {
    const lost = r.results.filter((x) => x.rttMs === null).map((x) => x.target);
    const why =
      answered === 0
        ? `no answer from ${lost.join(", ")}`
        : `only ${answered} of ${sent} targets answered (min_targets ${p.minTargets}; lost ${lost.join(", ")})`;
    return { ...base, good: false, why };
  }
  if (p.maxRttMs !== null && medianMs !== null && medianMs > p.maxRttMs) {
    return { ...base, good: false, why: `median RTT ${fmtMs(medianMs)} above max_rtt ${fmtMs(p.maxRttMs)}` };
  }
  const low = down ? p.recoverRttMs : null;
  if (low !== null && low !== undefined && medianMs !== null && medianMs > low)
    return { ...base, good: false, why: `median RTT ${fmtMs(medianMs)} above recover_rtt ${fmtMs(low)}` };
  return { ...base, good: true, why: `${answered}/${sent} answered, median ${fmtMs(medianMs ?? 0)}` };
}

function transition(h: UplinkHealth, state: HealthState, reason: string, at: number): UplinkHealth {
  // Good rounds before a fall do not count toward the way back up.
  return { ...h, state, reason, since: at, goodStreak: state === "down" ? 0 : h.goodStreak };
}

export function onRound(h: UplinkHealth, r: RoundResult, p: HealthParams): Step {
  if (r.unprobed && !r.burst && r.results.every((x) => x.rttMs === null)) {
    const why = r.error ?? "the prober failed";
    const sent = r.results.length;
    const verdict: RoundVerdict = {
      seq: r.seq,
      good: false,
      why,
      answered: 0,
      sent,
      medianMs: null,
      counted: false,
    };
    return { next: h.probeError === why ? h : { ...h, probeError: why }, changed: false, verdict };
  }
  if (h.probeError !== null && !r.burst) h = { ...h, probeError: null };
  const v = judgeRound(r, p, h.linkProblem, h.state === "down");
  const burst = r.burst;
  const live = h.state === "up" && h.linkProblem === null && r.seq > h.suspicionOverSeq;
  const counted = burst
    ? live && r.startedAt >= h.linkOkSince
    : h.linkProblem !== null || r.startedAt >= h.linkOkSince;
  const verdict: RoundVerdict = burst
    ? { ...v, counted, why: `re-probe ${burst.index}/${burst.count}: ${v.why}` }
    : { ...v, counted };
  if (burst) return onBurstRound(h, r, verdict, p);
  const window = [...h.window, { sent: v.sent, lost: v.sent - v.answered }].slice(-LOSS_WINDOW);
  const next: UplinkHealth = { ...h, window };

  // Answers to probes queued while the carrier was gone come back with the queueing time in them.
  if (v.medianMs !== null && counted) {
    const m = v.medianMs;
    next.srttMs = h.srttMs === null ? m : h.srttMs + (m - h.srttMs) / 8;
    // RFC 3550 interarrival jitter, over consecutive round medians.
    if (h.lastRttMs !== null) {
      const d = Math.abs(m - h.lastRttMs);
      next.jitterMs = h.jitterMs === null ? d : h.jitterMs + (d - h.jitterMs) / 16;
    }
    next.lastRttMs = m;
  }
  const loss = lossRatio(next);
  next.quality = updateQuality(h.quality, {
    at: r.at,
    rttMs: counted ? v.medianMs : null,
    srttMs: next.srttMs,
    loss,
    jitterMs: next.jitterMs,
  });

  if (counted) {
    countStreak(next, h, r, verdict);
    if (v.good) {
      // The link answers: any suspicion up to this round is over.
      next.burstFailures = 0;
      next.suspicionOverSeq = Math.max(h.suspicionOverSeq, r.seq);
    }
  }

  const full = next.window.length >= LOSS_WINDOW;
  const lossTooHigh = p.maxLoss !== null && full && loss > p.maxLoss;
  const jitter = next.jitterMs;
  const over = (limit: number | null | undefined, x: number | null) =>
    limit !== null && limit !== undefined && full && x !== null && x > limit;
  if (next.state === "up" && over(p.maxJitterMs, jitter)) {
    const reason = `jitter ${fmtMs(jitter ?? 0)} is above max_jitter ${fmtMs(p.maxJitterMs ?? 0)}`;
    const down = streakDown(next, r, verdict, p);
    return down ?? { next: transition(next, "down", reason, r.at), changed: true, verdict };
  }
  // Back up only below the low marks (recover_loss, recover_jitter), not just under the high ones.
  const heldDown = over(p.recoverLoss ?? p.maxLoss, loss) || over(p.recoverJitterMs, jitter);
  if (next.state === "up") {
    const down = streakDown(next, r, verdict, p);
    if (down) return down;
    if (lossTooHigh) {
      const reason = `loss ${pct(loss)} over the last ${LOSS_WINDOW} rounds is above max_loss ${pct(p.maxLoss ?? 0)}`;
      return { next: transition(next, "down", reason, r.at), changed: true, verdict };
    }
  } else if (next.linkProblem === null && next.goodStreak >= p.upAfter && !lossTooHigh && !heldDown) {
    const rtt = next.srttMs === null ? "" : `, smoothed RTT ${fmtMs(next.srttMs)}`;
    const reason = `${next.goodStreak} good rounds in a row${rtt}, loss ${pct(loss)}`;
    return { next: transition(next, "up", reason, r.at), changed: true, verdict };
  }
  return { next, changed: false, verdict };
}

function countStreak(next: UplinkHealth, h: UplinkHealth, r: RoundResult, v: RoundVerdict): void {
  if (v.good) {
    next.goodStreak = h.goodStreak + 1;
    next.failStreak = 0;
    next.streakSilent = true;
  } else {
    next.goodStreak = 0;
    next.failStreak = h.failStreak + 1;
    next.streakSilent =
      (h.failStreak === 0 || h.streakSilent) && v.answered === 0 && !r.error && !h.linkProblem;
    next.lastFailure = v.why;
  }
}

/** down_after failed rounds in a row: the transition, or undefined. */
function streakDown(next: UplinkHealth, r: RoundResult, v: RoundVerdict, p: HealthParams): Step | undefined {
  if (next.failStreak < p.downAfter) return undefined;
  const n = next.failStreak;
  const lost = r.results.map((x) => x.target).join(", ");
  const reason = next.streakSilent
    ? `${n} rounds without an answer from ${lost}`
    : `${n} failed rounds in a row; last: ${v.why}`;
  return { next: transition(next, "down", reason, r.at), changed: true, verdict: v };
}

/** A burst round: failures for the streak while its suspicion is live, nothing else. */
function onBurstRound(h: UplinkHealth, r: RoundResult, v: RoundVerdict, p: HealthParams): Step {
  if (!v.counted) return { next: h, changed: false, verdict: v };
  const next: UplinkHealth = { ...h };
  if (!v.good) {
    countStreak(next, h, r, v);
    next.burstFailures = h.burstFailures + 1;
    const down = streakDown(next, r, v, p);
    if (down) return { ...down, next: { ...down.next, burstFailures: 0, suspicionOverSeq: r.seq } };
  }
  const last = r.burst !== undefined && r.burst.index >= r.burst.count;
  if (v.good || last) {
    // The suspicion is over without a fall: its failures do not count any more.
    next.failStreak = Math.max(0, next.failStreak - next.burstFailures);
    next.burstFailures = 0;
    next.suspicionOverSeq = r.seq;
  }
  return { next, changed: false, verdict: v };
}

/** A link problem takes the uplink down at once; its end only restarts the count of good rounds. */
export function onLink(h: UplinkHealth, problem: string | null, at: number): Step {
  if (problem !== null) {
    const next = { ...h, linkProblem: problem, goodStreak: 0 };
    if (h.state === "up") return { next: transition(next, "down", problem, at), changed: true };
    // Down for a link reason that has moved on (absent → no address → no gateway): say the new one.
    if (h.linkProblem !== null && h.linkProblem !== problem && h.reason === h.linkProblem)
      return { next: { ...next, reason: problem }, changed: true };
    return { next, changed: false };
  }
  if (h.linkProblem === null) return { next: h, changed: false };
  const next = { ...h, linkProblem: null, linkOkSince: at, goodStreak: 0, failStreak: 0 };
  // Down because of the link, which is fine now: say what it waits for, not what is over.
  if (h.state === "down" && h.reason === h.linkProblem)
    return {
      next: { ...next, reason: `${h.iface} usable again: waiting for good probe rounds` },
      changed: true,
    };
  return { next, changed: false };
}

/** An uplink nothing probes (no targets) follows its link alone: up as soon as the link is usable. */
export function onLinkUnprobed(h: UplinkHealth, problem: string | null, at: number): Step {
  const step = onLink(h, problem, at);
  if (problem !== null || step.next.state === "up") return step;
  return { next: transition(step.next, "up", "link usable (no probe targets)", at), changed: true };
}

export function observe(h: UplinkHealth): UplinkObservation {
  return {
    name: h.name,
    state: h.state,
    reason: h.reason,
    rttMs: h.srttMs,
    jitterMs: h.jitterMs,
    loss: lossRatio(h),
    quality: Math.round(h.quality.value * 1000) / 1000,
    since: h.since,
    probeError: h.probeError,
  };
}

/**
 * Passive health confirmed by probe (uplink-passive.ts, uplink-monitor.ts): down at once, with the
 * reason; the regular rounds and `up_after` bring it back, as after any other fall.
 */
export function onPassiveDown(h: UplinkHealth, reason: string, at: number): Step {
  if (h.state !== "up") return { next: h, changed: false };
  return { next: { ...transition(h, "down", reason, at), failStreak: 0, burstFailures: 0 }, changed: true };
}
