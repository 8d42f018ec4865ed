import { test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/health/probe-clock.ts";
import { RoundCollector } from "../../src/health/probe-rounds.ts";
import type { RoundResult } from "../../src/health/probe-types.ts";

const T = ["a", "b"];

function setup() {
  const clock = new ManualClock(0);
  const out: RoundResult[] = [];
  const c = new RoundCollector(T, clock, (r) => out.push(r));
  return { clock, out, c };
}

const summary = (rs: RoundResult[]) =>
  rs.map((r) => `${r.seq}:${r.results.map((x) => x.rttMs ?? "-").join(",")}`);

test("a round is handed on once every target answered or timed out", () => {
  const { out, c } = setup();
  c.open(0, 0, 1000, T);
  c.report(0, "a", 5);
  assert.equal(out.length, 0);
  c.report(0, "b", null);
  assert.deepEqual(summary(out), ["0:5,-"]);
});

test("rounds leave in order even when a later one completes first", () => {
  const { out, c } = setup();
  c.open(0, 0, 1000, T);
  c.open(1, 200, 1200, T);
  c.report(1, "a", 1);
  c.report(1, "b", 2);
  assert.equal(out.length, 0);
  c.report(0, "a", 3);
  c.report(0, "b", 4);
  assert.deepEqual(summary(out), ["0:3,4", "1:1,2"]);
});

test("the deadline concludes a round whose answers never come", () => {
  const { clock, out, c } = setup();
  c.open(0, 0, 900, T);
  c.report(0, "a", 7);
  clock.advance(899);
  assert.equal(out.length, 0);
  clock.advance(1);
  assert.deepEqual(summary(out), ["0:7,-"]);
  assert.equal(out[0]?.at, 900);
  assert.equal(clock.pending, 0);
});

test("late, duplicate and unknown reports are ignored", () => {
  const { clock, out, c } = setup();
  c.open(0, 0, 100, T);
  c.report(0, "a", 1);
  c.report(0, "a", 99);
  c.report(0, "x", 1);
  clock.advance(100);
  c.report(0, "b", 2);
  c.report(5, "a", 1);
  assert.deepEqual(summary(out), ["0:1,-"]);
  c.open(0, 0, 100, T);
  assert.equal(out.length, 1, "a concluded seq is not reopened");
});

test("targets not probed count as lost; a round with none is concluded at once with its error", () => {
  const { out, c } = setup();
  c.open(0, 0, 1000, ["a"]);
  c.report(0, "a", 3);
  c.open(1, 200, 1200, [], "no address on wan1");
  assert.deepEqual(summary(out), ["0:3,-", "1:-,-"]);
  assert.equal(out[1]?.error, "no address on wan1");
});

test("discardPending drops waiting rounds and releases completed ones behind them", () => {
  const { clock, out, c } = setup();
  c.open(0, 0, 1000, T);
  c.open(1, 200, 1200, T);
  c.report(1, "a", 1);
  c.report(1, "b", 1);
  c.discardPending();
  assert.deepEqual(summary(out), ["1:1,1"]);
  assert.equal(clock.pending, 0);
});

test("concludeAll ends every round now, marking silent ones with the error", () => {
  const { out, c } = setup();
  c.open(0, 0, 1000, T);
  c.report(0, "a", 2);
  c.open(1, 200, 1200, T);
  c.concludeAll("fping exited 4");
  assert.deepEqual(summary(out), ["0:2,-", "1:-,-"]);
  assert.equal(out[0]?.error, undefined);
  assert.equal(out[1]?.error, "fping exited 4");
});

test("answered: answers (not timeouts) so far of a round still held, undefined once handed on", () => {
  const { out, c } = setup();
  c.open(0, 0, 1000, T);
  assert.equal(c.answered(0), 0);
  c.report(0, "a", null);
  assert.equal(c.answered(0), 0, "a timeout is no answer");
  c.report(0, "b", 3);
  assert.equal(out.length, 1);
  assert.equal(c.answered(0), undefined);
  assert.equal(c.answered(7), undefined);
});
