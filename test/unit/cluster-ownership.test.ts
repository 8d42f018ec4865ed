import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  bucketsOf,
  countByOwner,
  fnv1a,
  minimumMoves,
  moduloOwners,
  moves,
  rebalance,
  type Assignment,
} from "../../src/cluster/ownership.ts";

const names = (n: number) => Array.from({ length: n }, (_, i) => `node${i + 1}`);

function assertBalanced(a: Assignment, members: string[]): void {
  assert.equal(a.owners.length, a.buckets);
  assert.ok(
    a.owners.every((o) => members.includes(o)),
    "every bucket has a live owner",
  );
  const counts = members.map((m) => countByOwner(a.owners).get(m) ?? 0);
  assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `counts ${counts.join("/")}`);
}

describe("cluster ownership", () => {
  test("FNV-1a matches the reference values", () => {
    assert.equal(fnv1a(""), 0x811c9dc5);
    assert.equal(fnv1a("a"), 0xe40c292c);
    assert.equal(fnv1a("foobar"), 0xbf9cf968);
  });

  test("any member count gets buckets within one of each other", () => {
    for (const buckets of [1, 7, 64, 255, 256, 1000])
      for (let n = 1; n <= 9; n++) assertBalanced(rebalance(null, names(n), buckets), names(n));
  });

  test("the result depends on the member set, not its order or duplicates", () => {
    const a = rebalance(null, ["c", "a", "b"], 256);
    assert.deepEqual(rebalance(null, ["b", "c", "a", "a"], 256), a);
    assert.deepEqual(a.members, ["a", "b", "c"]);
  });

  test("a leaving member's buckets move, nothing else; survivors keep all they had", () => {
    for (let n = 2; n <= 8; n++) {
      const all = names(n);
      const prev = rebalance(null, all, 256);
      const gone = all[n - 1] ?? "";
      const rest = all.filter((m) => m !== gone);
      const next = rebalance(prev, rest, 256);
      assertBalanced(next, rest);
      assert.equal(moves(prev, next), bucketsOf(prev, gone).length);
      assert.equal(moves(prev, next), minimumMoves(prev, rest));
      for (const m of rest) for (const b of bucketsOf(prev, m)) assert.equal(next.owners[b], m);
    }
  });

  test("a joining member takes exactly its share, only from the others", () => {
    for (let n = 1; n <= 8; n++) {
      const prev = rebalance(null, names(n), 256);
      const all = names(n + 1);
      const next = rebalance(prev, all, 256);
      assertBalanced(next, all);
      const joiner = all[n] ?? "";
      assert.equal(moves(prev, next), bucketsOf(next, joiner).length);
      assert.equal(moves(prev, next), minimumMoves(prev, all));
      assert.ok(
        next.owners.every((o, b) => o === joiner || o === prev.owners[b]),
        "no bucket moved between old members",
      );
    }
  });

  test("random membership churn always moves the minimum and stays balanced", () => {
    let seed = 42;
    const rand = (k: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % k;
    };
    const pool = names(10);
    let members = pool.slice(0, 3);
    let a = rebalance(null, members, 256);
    for (let step = 0; step < 200; step++) {
      const m = pool[rand(pool.length)] ?? "";
      const next = members.includes(m) ? members.filter((x) => x !== m) : [...members, m];
      if (next.length === 0) continue;
      const b = rebalance(a, next, 256);
      assertBalanced(b, next);
      assert.equal(moves(a, b), minimumMoves(a, next), `step ${step}`);
      members = next;
      a = b;
    }
  });

  test("a changed bucket count starts over; no members means no owners", () => {
    const a = rebalance(null, names(3), 256);
    assertBalanced(rebalance(a, names(3), 128), names(3));
    assert.ok(rebalance(a, [], 256).owners.every((o) => o === ""));
    assert.throws(() => rebalance(null, names(2), 0));
  });

  test("modulo hashing moves far more on a leave than the minimum", () => {
    const before = moduloOwners(names(4), 256);
    const after = moduloOwners(names(3), 256);
    const moved = after.filter((o, b) => before[b] !== o).length;
    const prev = rebalance(null, names(4), 256);
    assert.ok(moved > 2 * minimumMoves(prev, names(3)), `${moved}`);
  });
});
