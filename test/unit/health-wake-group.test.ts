import { test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/health/probe-clock.ts";
import { WakeGroup, gridStart, wakeGroupFor } from "../../src/health/wake-group.ts";

test("requests due within each other's slack share one wake-up, never before their time", () => {
  const clock = new ManualClock(0);
  const g = new WakeGroup(clock);
  const ran: string[] = [];
  let wakes = 0;
  g.onWake(() => wakes++);
  g.at(20, 50, () => ran.push(`a@${clock.now()}`));
  g.at(44, 50, () => ran.push(`b@${clock.now()}`));
  g.at(100, 50, () => ran.push(`c@${clock.now()}`)); // beyond a's slack: a wake-up of its own
  clock.advance(200);
  assert.deepEqual(ran, ["a@44", "b@44", "c@100"]);
  assert.equal(wakes, 2);
});

test("a lone request runs on time; a cancelled one never runs", () => {
  const clock = new ManualClock(0);
  const g = new WakeGroup(clock);
  const ran: number[] = [];
  g.at(30, 50, () => ran.push(clock.now()));
  const cancel = g.at(35, 0, () => ran.push(-1));
  cancel();
  clock.advance(100);
  assert.deepEqual(ran, [30]);
  assert.equal(g.pending, 0);
  assert.equal(clock.pending, 0, "no timer left behind");
});

test("a request made while waking runs at its own time; one may cancel another due in the same wake-up", () => {
  const clock = new ManualClock(0);
  const g = new WakeGroup(clock);
  const ran: string[] = [];
  let cancelB = (): void => undefined;
  g.at(10, 0, () => {
    ran.push(`a@${clock.now()}`);
    cancelB();
    g.at(clock.now() + 10, 0, () => ran.push(`again@${clock.now()}`));
  });
  cancelB = g.at(10, 0, () => ran.push("b"));
  clock.advance(50);
  assert.deepEqual(ran, ["a@10", "again@20"]);
});

test("one group per clock; fpings start on a common grid", () => {
  const clock = new ManualClock(0);
  assert.equal(wakeGroupFor(clock), wakeGroupFor(clock));
  assert.notEqual(wakeGroupFor(clock), wakeGroupFor(new ManualClock(0)));
  assert.equal(gridStart(1000, 200), 1000);
  assert.equal(gridStart(1001, 200), 1200);
  assert.equal(gridStart(1001, 0), 1001);
});
