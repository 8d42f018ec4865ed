import type { UplinkFlowEvent } from "../system/conntrack-uplink.ts";

// Passive health of the uplinks, the policy half (pure: events and the time in, suspicions out).
// The daemon feeds it conntrack's NEW, UPDATE and DESTROY events (src/system/conntrack-uplink.ts) and asks
// the uplink's monitor to confirm a suspicion with a fast re-probe (uplink-monitor.ts).
//
// Why conntrack events and not nft counters: an event is the kernel telling us the moment a
// connection is new or first answered, at no cost in the packet path and none while idle, and it
// pairs every answer with its connection (so "12 of 12 unanswered" is exact, and the time a link
// takes to answer is learnt per connection). Counters would cost a rule on every reply packet of
// every connection and a poll of the counters many times a second to see a silence as fast; a
// poll slow enough to be cheap could not meet the detection time. The events cost per event:
// conntrack prints ~7 lines per TCP connection (NEW, each state change, DESTROY), and 1.4.7 filters
// by mark and state only in user space, so the kernel sends them all; nothing per packet, nothing
// while idle. With `balance.conntrack_events: minimal` (opt-in: it hides the rest from every other
// listener) the kernel itself is told (`ct event set`) to report a balanced connection's NEW,
// first answer and DESTROY only, 3 lines instead of ~7 (bench/uplinks-passive.ts --only cpu and
// bench/RESULTS.md for the CPU per connection either way). The daemon reads conntrack's output
// every 25 ms (with `minimal`, every 100 ms while every uplink answers and 25 ms once a silence
// may have begun: UplinkPassive.watchAt), not per line, and times everything by the events'
// timestamps (conntrack's, taken as it receives them).
//
// - Per uplink (by the conntrack mark nflb gives its connections): new TCP/UDP connections wait
//   for their first answer (SYN-ACK, RST, the first UDP reply). Answered within `timeout` counts
//   as answered, else as unanswered (totals for status and metrics). A RST to a SYN shows as the
//   entry's DESTROY (CLOSE, still unreplied), not as an UPDATE: a refusal is an answer (the far
//   end was reached), so an uplink whose destinations refuse is not suspect.
// - The streak: new connections that left since the uplink's last answer. Suspect when the streak
//   reaches `suspect_after` and its first connection has waited at least max(`min_silence`, the
//   uplink's answer time srtt + 4·rttvar, RFC 6298 over the answers it got), while the uplink is
//   up and no other uplink that carried new connections meanwhile is as silent (then the cause is
//   more likely on our side, the LAN or the destinations, than on one link).
// - A suspicion is only a question: the monitor re-probes through the link and takes it down only
//   when the probes fail too. A cleared suspicion (the probes answered) starts the streak afresh
//   and holds the next one back for a cool-down (500 ms, doubled after each false alarm that
//   follows the previous one within two cool-downs, up to 32 s): a link that blocks TCP but
//   answers pings is not re-probed all the time.
//
// False suspicions under random loss p (per connection): a streak of n needs n unanswered in a
// row, about N·(1−p)·pⁿ per N connections (20 % loss, n = 4, 25 new connections/s: ~20 in 10 min);
// each is confirmed only if every re-probe round fails as well (3 rounds × 2 targets: p⁶).

export const PASSIVE = {
  /** Pending connections kept (all uplinks); beyond that the oldest is forgotten. */
  maxPending: 65_536,
  /** Answers learnt before the answer time counts. */
  warmup: 3,
  rttvarGain: 4,
  cooldownMs: 500,
  maxBackoff: 6,
  backoffWithin: 2,
  /**
   * Answers later than this are not learnt (Karn's rule): most are answers to a retransmitted SYN
   * (Linux retransmits after 1 s), and learning them would stretch the wait to the timeout's half
   * after any loss, slowing the next detection down for minutes.
   */
  maxSampleMs: 800,
  /** A suspicion no outcome settled by then (its monitor was replaced by a reload) is dropped. */
  maxSuspectMs: 10_000,
} as const;

export interface UplinkPassiveParams {
  /** New connections in a row without an answer that make the uplink suspect. */
  suspectAfter: number;
  /** The first of them has waited at least this long (ms). */
  minSilenceMs: number;
  /** A connection not answered by then counts as unanswered (ms). */
  timeoutMs: number;
}

export interface PassiveUplink {
  name: string;
  /** Its conntrack mark, inside `mask`. */
  mark: number;
  /** null: passive health off for it (its connections still witness for the others). */
  params: UplinkPassiveParams | null;
}

export interface PassiveSuspicion {
  uplink: string;
  /** New connections since the last answer. */
  unanswered: number;
  /** Since the first of them left (ms). */
  silentMs: number;
}

export interface PassiveStats {
  answered: number;
  unanswered: number;
  /** Unanswered new connections in a row now (since the last answer). */
  streak: number;
  suspect: boolean;
  suspicions: { confirmed: number; cleared: number };
}

interface Link {
  name: string;
  params: UplinkPassiveParams | null;
  up: boolean;
  answered: number;
  unanswered: number;
  streak: number;
  streakSince: number;
  lastNewAt: number;
  lastAnswerAt: number;
  srtt: number | null;
  rttvar: number;
  samples: number;
  suspect: boolean;
  suspectSince: number;
  holdUntil: number;
  backoff: number;
  lastFalseAt: number;
  confirmed: number;
  cleared: number;
}

function newLink(name: string, params: UplinkPassiveParams | null): Link {
  return {
    name,
    params,
    up: true,
    answered: 0,
    unanswered: 0,
    streak: 0,
    streakSince: 0,
    lastNewAt: -Infinity,
    lastAnswerAt: -Infinity,
    srtt: null,
    rttvar: 0,
    samples: 0,
    suspect: false,
    suspectSince: -Infinity,
    holdUntil: -Infinity,
    backoff: 0,
    lastFalseAt: -Infinity,
    confirmed: 0,
    cleared: 0,
  };
}

export class UplinkPassive {
  private mask = 0xffffffff;
  private readonly byName = new Map<string, Link>();
  private byMark = new Map<number, Link>();
  /** conntrack id → the uplink and when its connection was seen; insertion order is arrival order. */
  private readonly pending = new Map<number, { link: Link; at: number }>();

  /** Follow the uplinks of a (new) config and their marks; links that stay keep their history. */
  configure(uplinks: readonly PassiveUplink[], mask: number): void {
    this.mask = mask >>> 0;
    const names = new Set(uplinks.map((u) => u.name));
    for (const n of this.byName.keys()) if (!names.has(n)) this.byName.delete(n);
    this.byMark = new Map();
    for (const u of uplinks) {
      let l = this.byName.get(u.name);
      if (!l) this.byName.set(u.name, (l = newLink(u.name, u.params)));
      l.params = u.params;
      this.byMark.set((u.mark & this.mask) >>> 0, l);
    }
    for (const [id, p] of this.pending) if (!this.byName.has(p.link.name)) this.pending.delete(id);
  }

  /** Any uplink watched at all (else the daemon need not listen to conntrack). */
  get active(): boolean {
    for (const l of this.byName.values()) if (l.params) return true;
    return false;
  }

  /** The uplink's state as the daemon sees it; a change starts its streak afresh. */
  setUp(name: string, up: boolean): void {
    const l = this.byName.get(name);
    if (!l || l.up === up) return;
    l.up = up;
    l.streak = 0;
    l.suspect = false;
    l.backoff = 0;
    l.holdUntil = -Infinity;
  }

  /** One conntrack event; true when a suspicion may be due now (call check()). */
  event(e: UplinkFlowEvent, now: number): boolean {
    if (e.type === "new") {
      const l = this.byMark.get((e.mark & this.mask) >>> 0);
      if (!l || this.pending.has(e.id)) return false;
      if (this.pending.size >= PASSIVE.maxPending) {
        const oldest = this.pending.keys().next();
        if (!oldest.done) this.pending.delete(oldest.value);
      }
      this.pending.set(e.id, { link: l, at: now });
      if (l.streak === 0) l.streakSince = now;
      l.streak++;
      l.lastNewAt = now;
      return l.params !== null && l.streak >= l.params.suspectAfter;
    }
    // An UPDATE still unreplied, or an unanswered entry deleted from user space or timed out (it
    // stays pending and counts as unanswered at `timeout`), says nothing.
    if (e.type === "update" ? e.unreplied : e.unreplied && !e.reset) return false;
    const p = this.pending.get(e.id);
    if (!p) return false;
    const l = p.link;
    // A refusal later than `timeout` is not an answer in time (an UPDATE keeps the looser rule
    // it always had: answered until the next expire() counts it).
    if (e.type === "destroy" && now - p.at >= (l.params?.timeoutMs ?? DEFAULT_TIMEOUT_MS)) return false;
    this.pending.delete(e.id);
    l.answered++;
    l.lastAnswerAt = now;
    l.streak = 0;
    // A DESTROY of an answered entry whose UPDATE was lost: answered, but when is unknown.
    if (e.type === "update" || e.unreplied) learn(l, now - p.at);
    // Another uplink may have been waiting for this one to answer before it could be suspect.
    return this.armed();
  }

  /** Some uplink has a streak long enough to be suspect once it is old enough. */
  armed(): boolean {
    for (const l of this.byName.values())
      if (l.params && !l.suspect && l.up && l.streak >= l.params.suspectAfter) return true;
    return false;
  }

  /**
   * When conntrack's output must next be read soon after it is written: the moment an uplink
   * would show the start of a silence (its first unanswered connection has waited half the
   * wait, or its streak is long enough to be suspect); Infinity while none has a streak.
   * Until then reading less often changes nothing, as every event carries its own time.
   */
  watchAt(): number {
    let at = Infinity;
    for (const l of this.byName.values()) {
      const p = l.params;
      if (!p || !l.up || l.suspect || l.streak === 0) continue;
      at = Math.min(at, l.streak >= p.suspectAfter ? l.streakSince : l.streakSince + wait(l, p) / 2);
    }
    return at;
  }

  /** How long a connection of this uplink may wait for its answer before it counts toward suspicion. */
  waitMs(name: string): number | null {
    const l = this.byName.get(name);
    return l?.params ? wait(l, l.params) : null;
  }

  /**
   * Count connections unanswered for `timeout` as such, and return the uplinks suspect now (each
   * is marked suspect until outcome()), with the next moment a suspicion may become due.
   */
  check(now: number): { suspects: PassiveSuspicion[]; nextAt: number | null } {
    this.expire(now);
    const suspects: PassiveSuspicion[] = [];
    let nextAt: number | null = null;
    const later = (t: number) => (nextAt = nextAt === null ? t : Math.min(nextAt, t));
    for (const l of this.byName.values()) {
      const p = l.params;
      if (l.suspect && now - l.suspectSince > PASSIVE.maxSuspectMs) {
        l.suspect = false;
        l.streak = 0;
      }
      if (!p || !l.up || l.suspect || l.streak < p.suspectAfter) continue;
      const due = Math.max(l.streakSince + wait(l, p), l.holdUntil);
      if (now < due) {
        later(due);
        continue;
      }
      if (!this.othersAnswer(l)) continue;
      l.suspect = true;
      l.suspectSince = now;
      suspects.push({ uplink: l.name, unanswered: l.streak, silentMs: Math.round(now - l.streakSince) });
    }
    return { suspects, nextAt };
  }

  /** How the monitor settled a suspicion: confirmed (the uplink goes down) or cleared (it answered). */
  outcome(name: string, result: "confirmed" | "cleared", now: number): void {
    const l = this.byName.get(name);
    if (!l) return;
    l.suspect = false;
    l.streak = 0;
    if (result === "confirmed") {
      l.confirmed++;
      l.backoff = 0;
      return;
    }
    l.cleared++;
    const base = PASSIVE.cooldownMs;
    l.backoff =
      now - l.lastFalseAt <= PASSIVE.backoffWithin * base * 2 ** l.backoff
        ? Math.min(PASSIVE.maxBackoff, l.backoff + 1)
        : 0;
    l.lastFalseAt = now;
    l.holdUntil = now + base * 2 ** l.backoff;
  }

  /** The first unanswered connection of the streak left this long ago (ms); null without a streak. */
  silentMs(name: string, now: number): number | null {
    const l = this.byName.get(name);
    return l && l.streak > 0 ? now - l.streakSince : null;
  }

  stats(name: string): PassiveStats | null {
    const l = this.byName.get(name);
    if (!l) return null;
    return {
      answered: l.answered,
      unanswered: l.unanswered,
      streak: l.streak,
      suspect: l.suspect,
      suspicions: { confirmed: l.confirmed, cleared: l.cleared },
    };
  }

  /** Connections waiting for their first answer (all uplinks). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Each pending connection older than its uplink's `timeout` counts once as unanswered. */
  private expire(now: number): void {
    for (const [id, p] of this.pending) {
      const timeout = p.link.params?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      // Arrival order: the first young one ends the scan (timeouts differ little between uplinks).
      if (now - p.at < timeout) break;
      this.pending.delete(id);
      p.link.unanswered++;
    }
  }

  /**
   * No other live uplink that carried new connections since `l` went silent is silent as well:
   * each of them answered something since. With no such uplink, the probes alone decide.
   */
  private othersAnswer(l: Link): boolean {
    for (const o of this.byName.values()) {
      if (o === l || !o.up || o.lastNewAt < l.streakSince) continue;
      if (o.lastAnswerAt < l.streakSince) return false;
    }
    return true;
  }
}

const DEFAULT_TIMEOUT_MS = 3000;

function learn(l: Link, ms: number): void {
  if (ms > PASSIVE.maxSampleMs) return;
  if (l.srtt === null) {
    l.srtt = ms;
    l.rttvar = ms / 2;
  } else {
    l.rttvar += (Math.abs(l.srtt - ms) - l.rttvar) / 4;
    l.srtt += (ms - l.srtt) / 8;
  }
  l.samples++;
}

function wait(l: Link, p: UplinkPassiveParams): number {
  const learnt = l.srtt !== null && l.samples >= PASSIVE.warmup ? l.srtt + PASSIVE.rttvarGain * l.rttvar : 0;
  // Never longer than half the timeout: past that, waiting tells little more.
  return Math.max(p.minSilenceMs, Math.min(learnt, p.timeoutMs / 2));
}
