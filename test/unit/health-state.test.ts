import { test } from "node:test";
import assert from "node:assert/strict";
import type { RoundResult } from "../../src/health/probe-types.ts";
import {
  healthParams,
  initialHealth,
  lossRatio,
  observe,
  onLink,
  onRound,
  type HealthParams,
  type UplinkHealth,
} from "../../src/health/uplink-state.ts";
import { probeSchema } from "../../src/config/schema.ts";

const T = ["198.18.200.1", "198.18.200.2"];
const defaults: HealthParams = healthParams(probeSchema.parse({ targets: T }));

/** Feeds rounds 200 ms apart; `rtts` per round: one entry per target, null = lost. */
class Run {
  h: UplinkHealth;
  t = 0;
  seq = 0;
  changes: { at: number; state: string; reason: string }[] = [];
  constructor(
    readonly p: HealthParams = defaults,
    readonly targets = T,
  ) {
    this.h = initialHealth("isp1", "wan1", this.t);
  }
  round(rtts: (number | null)[], extra: Partial<RoundResult> = {}) {
    this.t += 200;
    const r: RoundResult = {
      seq: this.seq++,
      startedAt: this.t - 500,
      at: this.t,
      results: this.targets.map((target, i) => ({ target, rttMs: rtts[i] ?? null })),
      ...extra,
    };
    const s = onRound(this.h, r, this.p);
    this.h = s.next;
    if (s.changed) this.changes.push({ at: this.t, state: this.h.state, reason: this.h.reason });
    return s;
  }
  rounds(n: number, rtts: (number | null)[]) {
    for (let i = 0; i < n; i++) this.round(rtts);
  }
  link(problem: string | null) {
    const s = onLink(this.h, problem, this.t);
    this.h = s.next;
    if (s.changed) this.changes.push({ at: this.t, state: this.h.state, reason: this.h.reason });
  }
}

const silent = [null, null];
const good = [10, 12];

test("an uplink starts up and says why", () => {
  const o = observe(initialHealth("isp1", "wan1", 42));
  assert.equal(o.state, "up");
  assert.match(o.reason, /assumed up/);
  assert.equal(o.since, 42);
  assert.equal(o.rttMs, null);
  assert.equal(o.loss, 0);
  assert.equal(o.quality, 1);
});

test("down after down_after silent rounds, naming the targets", () => {
  const r = new Run();
  r.rounds(2, silent);
  assert.equal(r.h.state, "up");
  r.round(silent);
  assert.deepEqual(r.changes, [
    { at: 600, state: "down", reason: "3 rounds without an answer from 198.18.200.1, 198.18.200.2" },
  ]);
});

test("a good round in between resets the count", () => {
  const r = new Run();
  for (let i = 0; i < 20; i++) {
    r.rounds(2, silent);
    r.round(good);
  }
  assert.deepEqual(r.changes, []);
});

test("one target answering is enough with min_targets 1, not with 2", () => {
  const one = new Run();
  one.rounds(10, [5, null]);
  assert.deepEqual(one.changes, []);
  const two = new Run({ ...defaults, minTargets: 2 });
  two.rounds(3, [5, null]);
  assert.equal(two.changes.length, 1);
  assert.equal(
    two.changes[0]?.reason,
    "3 failed rounds in a row; last: only 1 of 2 targets answered (min_targets 2; lost 198.18.200.2)",
  );
});

test("a median RTT above max_rtt fails the round", () => {
  const r = new Run({ ...defaults, maxRttMs: 100 });
  r.rounds(5, [90, 100]);
  assert.deepEqual(r.changes, []);
  r.rounds(3, [90, 300]);
  assert.equal(r.h.state, "down");
  assert.equal(r.h.reason, "3 failed rounds in a row; last: median RTT 195 ms above max_rtt 100 ms");
});

test("up again after exactly up_after good rounds", () => {
  const r = new Run();
  r.rounds(3, silent);
  r.rounds(9, good);
  assert.equal(r.h.state, "down");
  r.round(good);
  assert.equal(r.h.state, "up");
  assert.match(r.h.reason, /^10 good rounds in a row, smoothed RTT \d+ ms, loss \d+%$/);
  assert.equal(r.changes.length, 2);
});

test("max_loss takes the uplink down over a full window and keeps it down while above", () => {
  const r = new Run({ ...defaults, maxLoss: 0.1, upAfter: 3 });
  // one of two probes lost every other round: 25 % loss, yet every round is good
  for (let i = 0; i < 4; i++) {
    r.round([5, null]);
    r.round(good);
  }
  assert.equal(r.h.state, "up", "not before the window is full");
  r.round([5, null]);
  r.round(good);
  assert.equal(r.h.state, "down");
  assert.equal(r.h.reason, "loss 25% over the last 10 rounds is above max_loss 10%");
  r.rounds(4, good);
  assert.equal(r.h.state, "down", "4 good rounds, but the window still holds 15 % loss");
  r.round(good);
  assert.equal(r.h.state, "up");
  assert.equal(lossRatio(r.h), 0.1);
});

test("a link problem takes it down at once; only rounds sent after the link is back count", () => {
  const r = new Run();
  r.rounds(5, good);
  r.link("carrier lost on wan1");
  assert.deepEqual(r.changes, [{ at: 1000, state: "down", reason: "carrier lost on wan1" }]);
  // answers keep coming (queued probes), but the link is still down
  r.rounds(20, good);
  assert.equal(r.h.state, "down");
  r.link(null);
  const back = r.t;
  // rounds sent before the carrier came back (startedAt = at - 500) do not count
  r.rounds(2, good);
  assert.equal(r.h.goodStreak, 0);
  r.rounds(10, good);
  assert.equal(r.h.state, "up");
  assert.deepEqual(r.changes[1], {
    at: back,
    state: "down",
    reason: "wan1 usable again: waiting for good probe rounds",
  });
  const up = r.changes[2];
  assert.ok(up && up.at - back >= 10 * 200, `up ${up?.at} too early after ${back}`);
});

test("a link problem while already down changes nothing visible", () => {
  const r = new Run();
  r.rounds(3, silent);
  r.link("no address on wan1");
  r.link("carrier lost on wan1");
  assert.equal(r.changes.length, 1);
  assert.match(r.h.reason, /3 rounds without an answer/);
});

test("a round that could not be sent fails with its error", () => {
  const r = new Run();
  for (let i = 0; i < 3; i++) r.round(silent, { error: "no address on wan1 for IPv4 targets" });
  assert.equal(r.h.reason, "3 failed rounds in a row; last: no address on wan1 for IPv4 targets");
});

test("smoothed RTT is an EWMA (1/8), jitter the RFC 3550 estimator, loss over 10 rounds", () => {
  const r = new Run();
  r.round([10, 10]);
  assert.equal(r.h.srttMs, 10);
  assert.equal(r.h.jitterMs, null);
  r.round([18, 18]);
  assert.equal(r.h.srttMs, 11);
  assert.equal(r.h.jitterMs, 8);
  r.round([18, 18]);
  assert.equal(r.h.jitterMs, 8 - 8 / 16);
  r.rounds(7, [10, null]);
  assert.equal(observe(r.h).loss, 7 / 20);
  r.rounds(10, good);
  assert.equal(observe(r.h).loss, 0);
});

/** xorshift32: deterministic "random" loss. */
function prng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

test("10 % random probe loss with 2 targets causes no transition in an hour of rounds", () => {
  const rnd = prng(7);
  const r = new Run();
  for (let i = 0; i < 18_000; i++) r.round([rnd() < 0.1 ? null : 20, rnd() < 0.1 ? null : 22]);
  assert.deepEqual(r.changes, []);
  assert.ok(r.h.quality.value > 0.7 && r.h.quality.value < 0.9, `quality ${r.h.quality.value}`);
});

test("a link flapping every second is held down by the up_after hysteresis", () => {
  const r = new Run();
  for (let cycle = 0; cycle < 30; cycle++) {
    r.rounds(5, silent);
    r.rounds(5, good);
  }
  assert.equal(r.changes.length, 1);
  assert.equal(r.h.state, "down");
});
