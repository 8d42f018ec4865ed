// Suspect → fast re-probe: the policy (suspect.ts), burst rounds in the state machine, and the whole
// loop (monitor + FpingProber + bursts) against a simulated fping under the manual clock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { probeSchema, uplinkSchema } from "../../src/config/schema.ts";
import type { LinkEvents, LinkSource, LinkState } from "../../src/health/link-watch.ts";
import { FpingProber } from "../../src/health/fping.ts";
import { ManualClock } from "../../src/health/probe-clock.ts";
import { fakeSpawn, type FakeProcess } from "../../testkit/probe-fakes.ts";
import type { FastReprobe, ProberHooks, RoundResult, RoundSink } from "../../src/health/probe-types.ts";
import { createUplinkMonitor } from "../../src/health/uplink-monitor.ts";
import { SUSPECT, Suspicion } from "../../src/health/suspect.ts";
import { healthParams, initialHealth, onRound, type UplinkHealth } from "../../src/health/uplink-state.ts";
import { parseAddr, type Addr } from "../../src/net/ip.ts";
import { prng, settle, simulatedUplink } from "../../testkit/fping-sim.ts";

/** When the main fping sends its next round (the first one not sent yet). */
const nextRound = (l: { clock: { now(): number }; sim: { mainStart: number } }): number =>
  l.sim.mainStart + (Math.floor((l.clock.now() - l.sim.mainStart) / 200) + 1) * 200;

const T = ["198.18.200.1", "198.18.200.2"];
const A = (s: string) => parseAddr(s) as Addr;
const P = { intervalMs: 200, timeoutMs: 500, downAfter: 3 };
const up = { state: "up" as const, linkProblem: null };
const ok = { good: true, counted: true };
const failed = { good: false, counted: true };

const round = (rtts: (number | null)[], extra: Partial<RoundResult> = {}): RoundResult => ({
  seq: 0,
  startedAt: 0,
  at: 0,
  results: T.map((target, i) => ({ target, rttMs: rtts[i] ?? null })),
  ...extra,
});

// ---- policy ------------------------------------------------------------------------------------

test("overdue time: none before 5 rounds with answers, then max(20 ms, srtt + 4·rttvar, 3 × recent max)", () => {
  const s = new Suspicion(P);
  for (let i = 0; i < 4; i++) s.learn(round([0.1, 0.2]), ok, 0);
  s.learn(round([null, null]), failed, 0);
  assert.equal(s.overdueMs(), null, "rounds without answers teach nothing");
  assert.equal(s.plan(0, up), null, "never before any RTT is known");
  s.learn(round([0.1, 0.2]), ok, 0);
  assert.equal(s.overdueMs(), SUSPECT.floorMs);
  for (let i = 0; i < 5; i++) s.learn(round([30, 40]), ok, 0);
  assert.equal(s.overdueMs(), 120, "3 × the largest recent RTT");
  // 90 ms RTTs: 270 ms is more than half the 500 ms timeout: not worth watching
  s.learn(round([90, 20]), ok, 0);
  assert.equal(s.overdueMs(), null);
  assert.equal(s.plan(0, up), null);
  // the spike leaves the 25-round memory
  for (let i = 0; i < SUSPECT.recentRounds; i++) s.learn(round([30, 30]), ok, 0);
  assert.equal(s.overdueMs(), 90);
  // answers to probes sent before the link came back (not counted) teach nothing
  s.learn(round([400, 400]), { good: true, counted: false }, 0);
  assert.equal(s.overdueMs(), 90);
});

test("a burst is down_after - 1 rounds, interval/4 apart (at least 10 ms), at most 10", () => {
  const warm = (p: typeof P) => {
    const s = new Suspicion(p);
    for (let i = 0; i < 5; i++) s.learn(round([1, 1]), ok, 0);
    return s;
  };
  assert.deepEqual(warm(P).plan(0, up), { count: 2, spacingMs: 50 });
  assert.deepEqual(warm({ ...P, intervalMs: 100 }).plan(0, up), { count: 2, spacingMs: 25 });
  assert.deepEqual(warm({ ...P, intervalMs: 20, downAfter: 5 }).plan(0, up), { count: 4, spacingMs: 10 });
  assert.deepEqual(warm({ ...P, downAfter: 50 }).plan(0, up), { count: 10, spacingMs: 50 });
  assert.equal(warm({ ...P, downAfter: 1 }).plan(0, up), null, "down_after 1: nothing to add");
});

test("no burst while down or with a link problem", () => {
  const s = new Suspicion(P);
  for (let i = 0; i < 5; i++) s.learn(round([1, 1]), ok, 0);
  assert.equal(s.plan(0, { state: "down", linkProblem: null }), null);
  assert.equal(s.plan(0, { state: "up", linkProblem: "carrier lost on wan1" }), null);
  assert.ok(s.plan(0, up));
});

test("cool-down: bursts start at least 1 s apart, doubling after false alarms in quick succession", () => {
  const s = new Suspicion(P);
  for (let i = 0; i < 5; i++) s.learn(round([1, 1]), ok, 0);
  let t = 10_000;
  const falseAlarm = () => {
    assert.ok(s.plan(t, up), `a burst at ${t}`);
    s.started(t);
    s.learn(round([1, 1], { burst: { index: 1, count: 2 } }), ok, t + 10);
    s.learn(round([1, 1], { burst: { index: 2, count: 2 } }), ok, t + 60);
  };
  falseAlarm();
  assert.equal(s.plan(t + 999, up), null, "cooling down");
  assert.equal(s.cooldownMs(), 1000, "a first false alarm: no back-off");
  t += 1000;
  falseAlarm();
  assert.equal(s.cooldownMs(), 2000);
  assert.equal(s.plan(t + 1999, up), null);
  t += 2000;
  falseAlarm();
  assert.equal(s.cooldownMs(), 4000);
  for (let i = 0; i < 10; i++) {
    t += s.cooldownMs();
    falseAlarm();
  }
  assert.equal(s.cooldownMs(), 1000 * 2 ** SUSPECT.maxBackoff, "bounded");
  assert.equal(s.falseAlarms, 13);
  // a false alarm long after the previous one starts over
  t += 5 * s.cooldownMs();
  falseAlarm();
  assert.equal(s.cooldownMs(), 1000);
  t += 2001;
  falseAlarm();
  assert.equal(s.cooldownMs(), 1000, "more than 2 cool-downs later");
  t += 2000;
  falseAlarm();
  assert.equal(s.cooldownMs(), 2000);
  // a burst that confirmed the suspicion (a round failed) resets the back-off
  t += s.cooldownMs();
  s.started(t);
  s.learn(round([null, null], { burst: { index: 1, count: 2 } }), failed, t + 510);
  s.learn(round([1, 1], { burst: { index: 2, count: 2 } }), ok, t + 520);
  assert.equal(s.cooldownMs(), 1000);
  // 5 intervals when that is longer
  const slow = new Suspicion({ ...P, intervalMs: 1000 });
  assert.equal(slow.cooldownMs(), 5000);
});

// ---- state machine -----------------------------------------------------------------------------

const params = healthParams(probeSchema.parse({ targets: T }));

function feed(h: UplinkHealth, rs: RoundResult[], p = params) {
  const changes: string[] = [];
  for (const r of rs) {
    const s = onRound(h, r, p);
    h = s.next;
    if (s.changed) changes.push(`${h.state}: ${h.reason}`);
  }
  return { h, changes };
}
const lost = [null, null];
/** Regular round `seq`, sent at seq × 200. */
const reg = (seq: number, rtts: (number | null)[]) =>
  round(rtts, { seq, startedAt: seq * 200, at: seq * 200 + (rtts.some((x) => x !== null) ? 1 : 500) });
/** Re-probe `index` of 2 for the overdue round 5. */
const b = (index: number, rtts: (number | null)[], at: number, count = 2) =>
  round(rtts, { seq: 5, burst: { index, count }, startedAt: at - 500, at });

test("burst rounds count for down_after, in the order rounds are concluded", () => {
  const h0 = feed(initialHealth("isp1", "wan1", 0), [reg(4, [1, 1])]).h;
  const { h, changes } = feed(h0, [reg(5, lost), b(1, lost, 1520), b(2, lost, 1570)]);
  assert.deepEqual(changes, ["down: 3 rounds without an answer from 198.18.200.1, 198.18.200.2"]);
  assert.equal(h.since, 1570);
  assert.equal(h.window.length, 2, "burst rounds stay out of the loss window");
});

test("a good regular round after the overdue one ends the suspicion: the re-probes' timeouts do not count", () => {
  // an outage of less than one interval: round 6 answered (and was handed on right after round 5)
  const h0 = feed(initialHealth("isp1", "wan1", 0), [reg(4, [1, 1])]).h;
  const { h, changes } = feed(h0, [reg(5, lost), reg(6, [1, 1]), b(1, lost, 1520), b(2, lost, 1570)]);
  assert.deepEqual(changes, []);
  assert.equal(h.failStreak, 0);
  // …nor do they join later regular failures
  const later = feed(h, [reg(7, lost), reg(8, lost)]);
  assert.deepEqual(later.changes, []);
  assert.equal(later.h.failStreak, 2);
});

test("a re-probe that answers ends the suspicion and takes its failures back out of the streak", () => {
  const h0 = feed(initialHealth("isp1", "wan1", 0), [reg(4, [1, 1])]).h;
  const { h, changes } = feed(h0, [reg(5, lost), b(1, lost, 1520), b(2, [1, 1], 1521)]);
  assert.deepEqual(changes, []);
  assert.equal(h.failStreak, 1, "round 5 alone");
  const s = onRound(h, b(2, lost, 1570), params);
  assert.equal(s.verdict?.counted, false, "a suspicion that is over counts nothing");
  // the regular path is unchanged: rounds 5, 6, 7
  assert.deepEqual(feed(h, [reg(6, lost)]).changes, []);
  assert.equal(feed(h, [reg(6, lost), reg(7, lost)]).changes.length, 1);
});

test("a burst that ends without a fall takes its failures back (down_after above the burst)", () => {
  const p = { ...params, downAfter: 4 };
  const h0 = feed(initialHealth("isp1", "wan1", 0), [reg(4, [1, 1])], p).h;
  const { h, changes } = feed(h0, [reg(5, lost), b(1, lost, 1520), b(2, lost, 1570)], p);
  assert.deepEqual(changes, []);
  assert.equal(h.failStreak, 1);
});

test("burst rounds move neither RTT, loss nor quality", () => {
  const h0 = feed(initialHealth("isp1", "wan1", 0), [reg(3, [10, 10]), reg(4, lost)]).h;
  const { h } = feed(h0, [b(1, [90, 90], 1020), b(2, lost, 1070)]);
  assert.equal(h.srttMs, 10);
  assert.equal(h.window.length, 2);
  assert.deepEqual(h.quality, h0.quality);
});

test("while down, burst rounds count for nothing: recovery needs up_after regular rounds", () => {
  let h = initialHealth("isp1", "wan1", 0);
  ({ h } = feed(h, [round([null, null]), round([null, null]), round([null, null])]));
  assert.equal(h.state, "down");
  const s = onRound(h, b(1, [1, 1], 700), params);
  assert.equal(s.verdict?.counted, false);
  assert.equal(s.verdict?.why, "re-probe 1/2: 2/2 answered, median 1.0 ms");
  assert.equal(s.next.goodStreak, 0);
});

// ---- the whole loop against a simulated fping (fping-sim.ts) --------------------------------------

const loop = (lost: (target: string, at: number) => boolean) => simulatedUplink({ targets: T, lost });

test("blackhole: an overdue round sends a burst through the same binding; down at ≈ round + 570 ms", async () => {
  let cut = Infinity;
  const l = loop((_, at) => at >= cut);
  l.m.start();
  await l.run(2000);
  assert.equal(l.bursts().length, 0, "no suspicion while everything answers");
  const next = nextRound(l);
  cut = next - 150; // the round at `next` is the first lost
  await l.run(1500);
  const [burst] = l.bursts();
  assert.ok(burst, "a burst was sent");
  // prettier-ignore
  assert.deepEqual(burst.argv, ["fping", "-c", "2", "-p", "50", "-t", "500", "-i", "1", "-b", "56", "-e",
    "-I", "wan1", "-S", "100.64.1.2", ...T]);
  assert.equal(l.bursts().length, 1);
  const down = l.changes[0];
  assert.equal(down?.state, "down");
  assert.equal(down?.reason, "3 rounds without an answer from 198.18.200.1, 198.18.200.2");
  const took = (down?.since ?? 0) - next;
  assert.ok(took >= 500 + 50 && took <= 500 + 100, `down ${took} ms after the first lost round was sent`);
  // while down: no more bursts, however many rounds are overdue
  await l.run(3000);
  assert.equal(l.bursts().length, 1);
  assert.equal(l.changes.length, 1);
  await l.m.stop();
});

test("a lost round whose re-probes answer changes nothing: no down, one burst", async () => {
  let drop = -1;
  const l = loop((_, at) => at === drop);
  l.m.start();
  await l.run(2000);
  drop = nextRound(l); // the next round
  await l.run(2000);
  assert.equal(l.bursts().length, 1);
  assert.equal(l.bursts()[0]?.alive, false, "the burst's fping exited by itself");
  assert.deepEqual(l.changes, []);
  await l.m.stop();
});

test("outages: 150 ms (one regular round and its re-probes) is ridden out, 250 ms (two rounds) is down", async () => {
  for (const [ms, downs] of [
    [150, 0],
    [250, 1],
  ] as const) {
    let from = Infinity;
    const l = loop((_, at) => at >= from && at < from + ms);
    l.m.start();
    await l.run(2000);
    from = nextRound(l) - 5;
    await l.run(2000);
    assert.equal(l.bursts().length, 1);
    // The round after the lost one answered before the lost one timed out: rounds are handed on
    // in order, so it resets the count before the re-probes' timeouts come in.
    assert.equal(l.changes.length, downs, `${ms} ms outage`);
    await l.m.stop();
  }
});

test("cool-down: a second overdue round soon after gets no burst of its own; later ones do", async () => {
  let drops: number[] = [];
  const l = loop((_, at) => drops.includes(at));
  l.m.start();
  await l.run(2000);
  const next = nextRound(l);
  // rounds 0, +400 ms and +1600 ms lost (each alone: never three in a row)
  drops = [next, next + 400, next + 1600];
  await l.run(3000);
  assert.equal(l.bursts().length, 2, "the one 400 ms later fell in the 1 s cool-down");
  assert.deepEqual(l.changes, []);
  await l.m.stop();
});

test("no suspicion before RTTs are known: a dead uplink from the start goes down the regular way", async () => {
  const l = loop(() => true);
  l.m.start();
  await l.run(3000);
  assert.equal(l.bursts().length, 0);
  assert.equal(l.changes[0]?.state, "down");
  await l.m.stop();
});

test("false-alarm arithmetic: 10 % random loss on each probe (2 targets) for an hour: no transition", async () => {
  // A round is overdue only when both probes are lost (1 %): a burst; down needs both of its rounds
  // to fail too (1 % each), i.e. 1e-6 per round, as three regular rounds in a row before.
  const rnd = prng(11);
  const l = loop(() => rnd() < 0.1);
  l.m.start();
  await l.run(60 * 60_000, 50);
  assert.deepEqual(l.changes, []);
  const n = l.bursts().length;
  // ≈ 18,000 rounds × 1 % = 180 overdue rounds, nearly all of them re-probed (a few fall in a cool-down)
  assert.ok(n >= 120 && n <= 240, `${n} bursts`);
  assert.ok(l.sim.sent > 0);
  await l.m.stop();
});

test("a link that fails for 1 s every 2 s goes down once and stays down (damped by up_after)", async () => {
  const l = loop((_, at) => Math.floor(at / 1000) % 2 === 1 && at > 3000);
  l.m.start();
  await l.run(30_000);
  assert.equal(l.changes.length, 1);
  assert.equal(l.changes[0]?.state, "down");
  assert.equal(l.bursts().length, 1, "one burst, before the first down; none while down");
  await l.m.stop();
});

test("an fping that cannot run the burst says nothing about the link", async () => {
  const clock = new ManualClock(0);
  const { spawn, procs } = fakeSpawn();
  const rounds: RoundResult[] = [];
  const overdue: number[] = [];
  const p = new FpingProber(
    { targets: T, intervalMs: 200, timeoutMs: 500, size: 56 },
    (r) => rounds.push(r),
    {
      clock,
      spawn,
      minAnswers: 1,
      onOverdue: (s) => overdue.push(s),
    },
  );
  p.start({ iface: "wan1", addresses: [A("100.64.1.2")] });
  p.overdueAfter(20);
  const main = procs[0] as FakeProcess;
  for (let k = 0; k < 3; k++) {
    clock.advance(k === 0 ? 1 : 200);
    for (const t of T) main.line(`${t} : [${k}], 64 bytes, 1 ms (1 avg, 0% loss)`);
  }
  // fping's schedule from its lines: round k sent at 200 k; round 3 has no answer 20 ms after
  clock.advance(218);
  assert.deepEqual(overdue, [], "not before 620");
  clock.advance(2);
  assert.deepEqual(overdue, [3], "at 620, one event-loop turn after the tick");
  // fping prints round 3's timeouts when they are due (sent at 600, timeout 500), as it does.
  clock.advance(480);
  for (const t of T) main.line(`${t} : [3], timed out (1 avg, 0% loss)`);
  clock.advance(520);
  assert.deepEqual(overdue, [3, 4, 5, 6, 7, 8], "each overdue round once");
  assert.equal(p.burst(3, 2, 50), true);
  assert.equal(p.burst(3, 2, 50), false, "one burst in flight at a time");
  const burst = procs[1] as FakeProcess;
  burst.exit(4, "fping: can't bind source address\n");
  await settle();
  clock.advance(3000);
  assert.ok(
    rounds.every((r) => r.burst === undefined),
    "its rounds were dropped",
  );
  assert.equal(p.burst(9, 2, 50), true, "and another one may start");
  await p.stop();
  assert.deepEqual(procs[2]?.signals, ["SIGTERM"], "stop kills a burst in flight");
});

test("the monitor watches only while up, and RTTs of answers queued during a carrier loss teach nothing", async () => {
  const clock = new ManualClock(0);
  const links = new (class extends EventEmitter<LinkEvents> implements LinkSource {
    state: LinkState | undefined;
    get() {
      return this.state;
    }
    set(carrier: boolean) {
      this.state = { iface: "wan1", exists: true, adminUp: true, carrier, addresses: [A("100.64.1.2")] };
      this.emit("link", this.state);
    }
  })();
  let sink: RoundSink = () => undefined;
  let hooks: ProberHooks = {};
  const watched: (number | null)[] = [];
  const bursts: number[] = [];
  const fast: FastReprobe = {
    overdueAfter: (ms) => void (watched[watched.length - 1] !== ms && watched.push(ms)),
    burst: (seq) => (bursts.push(seq), true),
  };
  const u = uplinkSchema.parse({ interface: "wan1", probe: { targets: T } });
  const m = createUplinkMonitor("isp1", u, {
    clock,
    link: links,
    prober: (s, h) => {
      sink = s;
      hooks = h;
      return { start: () => undefined, stop: async () => undefined, fast };
    },
  });
  m.start();
  links.set(true);
  let seq = 0;
  const feedRound = (rtts: (number | null)[]) => {
    clock.advance(200);
    sink(round(rtts, { seq: seq++, startedAt: clock.now() - 200, at: clock.now() }));
  };
  for (let i = 0; i < 4; i++) feedRound([1, 1]);
  assert.deepEqual(watched, [null], "not before 5 rounds with answers");
  feedRound([1, 1]);
  assert.deepEqual(watched, [null, 20]);
  assert.equal(hooks.minAnswers, 1);
  hooks.onOverdue?.(seq);
  assert.deepEqual(bursts, [seq], "an overdue round while up: a burst");
  links.set(false);
  assert.deepEqual(watched, [null, 20, null], "no watching while down");
  hooks.onOverdue?.(seq + 1);
  assert.equal(bursts.length, 1, "and no burst");
  clock.advance(1000);
  links.set(true);
  // the probes queued while the carrier was gone are answered at once
  feedRound([440, 440]);
  feedRound([240, 240]);
  for (let i = 0; i < 10; i++) feedRound([1, 1]);
  assert.equal(m.snapshot().state, "up");
  assert.equal(watched[watched.length - 1], 20, "still 20 ms: the queued answers were not learnt");
  await m.stop();
});
