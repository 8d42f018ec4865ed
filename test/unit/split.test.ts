import { test } from "node:test";
import assert from "node:assert/strict";
import {
  apportion,
  hashBuckets,
  reduceWeights,
  rotationSlots,
  runs,
  smoothRotation,
} from "../../src/plan/split.ts";

const count = (xs: string[]) =>
  xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {});

test("smooth rotation is the exact weighted rotation, interleaved", () => {
  const seq = smoothRotation([
    { name: "a", weight: 5 },
    { name: "b", weight: 3 },
    { name: "c", weight: 2 },
  ]);
  assert.equal(seq.length, 10);
  assert.deepEqual(count(seq), { a: 5, b: 3, c: 2 });
  // never the same uplink more than twice in a row for 5:3:2
  for (let i = 2; i < seq.length; i++) assert.ok(!(seq[i] === seq[i - 1] && seq[i] === seq[i - 2]));
});

test("weights are reduced by their gcd and scaled when huge", () => {
  assert.deepEqual(
    reduceWeights([
      { name: "a", weight: 6 },
      { name: "b", weight: 2 },
    ]),
    [
      { name: "a", weight: 3 },
      { name: "b", weight: 1 },
    ],
  );
  const big = reduceWeights(
    [
      { name: "a", weight: 9999 },
      { name: "b", weight: 1 },
      { name: "c", weight: 7 },
    ],
    100,
  );
  assert.equal(
    big.reduce((s, x) => s + x.weight, 0),
    100,
  );
  assert.ok(big.every((x) => x.weight >= 1));
});

test("random slots are contiguous runs", () => {
  const slots = rotationSlots(
    [
      { name: "a", weight: 5 },
      { name: "b", weight: 3 },
      { name: "c", weight: 2 },
    ],
    false,
  );
  assert.deepEqual(runs(slots), [
    { from: 0, to: 4, name: "a" },
    { from: 5, to: 7, name: "b" },
    { from: 8, to: 9, name: "c" },
  ]);
});

test("apportion hands out exactly the total", () => {
  const r = apportion(
    [
      { name: "a", weight: 1 },
      { name: "b", weight: 1 },
      { name: "c", weight: 1 },
    ],
    1024,
  );
  assert.equal(
    r.reduce((s, x) => s + x.weight, 0),
    1024,
  );
});

test("hash buckets: a failure moves only the failed member's buckets, recovery restores", () => {
  const all = [
    { name: "a", weight: 1 },
    { name: "b", weight: 1 },
    { name: "c", weight: 2 },
  ];
  const healthy = hashBuckets(all, new Set(["a", "b", "c"]));
  assert.deepEqual(count(healthy), { a: 256, b: 256, c: 512 });
  const bDown = hashBuckets(all, new Set(["a", "c"]), all);
  healthy.forEach((owner, i) => {
    if (owner !== "b") assert.equal(bDown[i], owner, `bucket ${i} moved although ${owner} is alive`);
    else assert.notEqual(bDown[i], "b");
  });
  assert.deepEqual(hashBuckets(all, new Set(["a", "b", "c"])), healthy);
});
