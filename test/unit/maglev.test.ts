import { test } from "node:test";
import assert from "node:assert/strict";
import { maglevSize, maglevTable, permutationOf } from "../../src/plan/maglev.ts";

const names = (n: number) => Array.from({ length: n }, (_, i) => `198.51.100.${i + 1}:80`);
const eq = (ns: string[]) => ns.map((name) => ({ name, weight: 1 }));
const count = (xs: string[]) => xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>());

test("sizes: primes ≥ 100 slots per backend, at least 16381, at most 65537", () => {
  assert.equal(maglevSize(1), 16381);
  assert.equal(maglevSize(10), 16381);
  assert.equal(maglevSize(164), 32749);
  assert.equal(maglevSize(328), 65537);
  assert.equal(maglevSize(1000), 65537);
});

test("permutation: offset in [0, M), skip in [1, M)", () => {
  for (const n of names(50)) {
    const p = permutationOf(n, 251);
    assert.ok(p.offset >= 0 && p.offset < 251);
    assert.ok(p.skip >= 1 && p.skip < 251);
  }
});

test("every slot is filled and every backend holds ⌊M/N⌋ or ⌈M/N⌉ slots", () => {
  const t = maglevTable(eq(names(7)), 1021);
  assert.equal(t.length, 1021);
  assert.ok(t.every((x) => x !== ""));
  for (const c of count(t).values()) assert.ok(c === 145 || c === 146, String(c));
});

test("the table does not depend on the order of the backends", () => {
  const a = maglevTable(eq(names(5)), 509);
  const b = maglevTable(eq(names(5).reverse()), 509);
  assert.deepEqual(a, b);
});

test("removing one of 10 backends moves its slots and under 1% of the others", () => {
  const all = names(10);
  const M = maglevSize(10);
  const before = maglevTable(eq(all), M);
  for (const gone of all) {
    const after = maglevTable(eq(all.filter((n) => n !== gone)), M);
    let moved = 0;
    let others = 0;
    for (let i = 0; i < M; i++) {
      if (before[i] === gone) {
        assert.notEqual(after[i], gone);
        continue;
      }
      others++;
      if (after[i] !== before[i]) moved++;
    }
    assert.ok(moved / others < 0.01, `${gone}: ${moved}/${others}`);
  }
});

test("weights: slots in proportion", () => {
  const t = maglevTable(
    [
      { name: "a", weight: 3 },
      { name: "b", weight: 1 },
      { name: "c", weight: 0 },
    ],
    4093,
  );
  const c = count(t);
  assert.equal(c.get("c"), undefined);
  const share = (c.get("a") ?? 0) / t.length;
  assert.ok(Math.abs(share - 0.75) < 0.01, String(share));
});

test("no live backend: empty table", () => {
  assert.deepEqual(maglevTable([{ name: "a", weight: 0 }], 251), []);
});

test("tables are cached: the same backends and size give the same array", () => {
  const a = maglevTable(eq(names(4)), 4093);
  assert.equal(maglevTable(eq(names(4)), 4093), a);
});
