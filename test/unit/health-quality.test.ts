import { test } from "node:test";
import assert from "node:assert/strict";
import {
  QUALITY,
  baselineRtt,
  initialQuality,
  rawQuality,
  updateQuality,
  type QualityState,
} from "../../src/health/uplink-quality.ts";

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} ≉ ${b}`);

test("raw quality: queueing delay over the baseline and loss, bounded to [0.1, 1]", () => {
  close(rawQuality(null, null, 0), 1);
  close(rawQuality(40, 40, 0), 1, 1e-12);
  close(rawQuality(30, 40, 0), 1, 1e-12); // below the baseline is no better than it
  close(rawQuality(140, 40, 0), 0.5);
  close(rawQuality(40, 40, 0.1), 0.8);
  close(rawQuality(140, 40, 0.25), 0.25);
  close(rawQuality(40, 40, 0.5), QUALITY.floor);
  close(rawQuality(5000, 40, 0), QUALITY.floor);
});

test("a distant but idle uplink is as good as a near one", () => {
  close(rawQuality(600, 600, 0), rawQuality(5, 5, 0));
});

function feed(q: QualityState, from: number, to: number, rtt: number, loss = 0, srtt = rtt): QualityState {
  for (let t = from; t < to; t += 200) q = updateQuality(q, { at: t, rttMs: rtt, srttMs: srtt, loss });
  return q;
}

test("the baseline is the lowest RTT of the last 10 minutes", () => {
  let q = feed(initialQuality(), 0, 60_000, 20);
  q = feed(q, 60_000, 120_000, 35);
  assert.equal(baselineRtt(q), 20);
  q = feed(q, 120_000, 120_000 + QUALITY.baselineWindowMs, 35);
  assert.equal(baselineRtt(q), 35, "a lasting change of path becomes the new baseline");
});

test("quality follows a step with a 5 s time constant, not round by round", () => {
  let q = feed(initialQuality(), 0, 60_000, 20);
  close(q.value, 1, 1e-6);
  // congestion: +100 ms of queueing → raw 0.5
  q = feed(q, 60_000, 65_000, 120, 0, 120);
  assert.ok(
    q.value > 0.5 + 0.5 * Math.exp(-1) - 0.03 && q.value < 0.5 + 0.5 * Math.exp(-1) + 0.03,
    `${q.value}`,
  );
  q = feed(q, 65_000, 90_000, 120, 0, 120);
  close(q.value, 0.5, 0.01);
});

test("one bad round moves quality by a few percent only", () => {
  let q = feed(initialQuality(), 0, 60_000, 20);
  q = updateQuality(q, { at: 60_000, rttMs: null, srttMs: 20, loss: 0.5 });
  assert.ok(q.value > 0.95, `${q.value}`);
});
