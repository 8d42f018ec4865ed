import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  maglevBase,
  maglevPools,
  maglevSize,
  maglevTable,
  nextPrime,
  permutationOf,
} from "../../src/plan/maglev.ts";
import { webService } from "../../testkit/service-config.ts";
import { planServices } from "../../src/plan/services.ts";

const names = (n: number) => Array.from({ length: n }, (_, i) => `198.51.100.${i + 1}:80`);
const eq = (ns: string[]) => ns.map((name) => ({ name, weight: 1 }));
const count = (xs: string[]) => xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>());

test("sizes: the smallest step of a fixed ladder (primes, ×1.5) with ≥ 100 slots per backend", () => {
  for (let n = 1; n <= 10; n++) assert.equal(maglevSize(n), 1021);
  assert.equal(maglevSize(11), 1543);
  assert.equal(maglevSize(15), 1543);
  assert.equal(maglevSize(16), 2333);
  assert.equal(maglevSize(1024), 135571);
  let prev = 0;
  for (let n = 1; n <= 1024; n++) {
    const m = maglevSize(n);
    assert.ok(m >= 100 * n && nextPrime(m) === m, `N=${n}: ${m}`);
    // Steps only: a size is the ladder's next one or the same.
    if (m !== prev && prev !== 0) assert.ok(m >= 1.5 * prev && m < 1.5 * prev + 100, `${prev} → ${m}`);
    prev = m;
  }
  assert.equal(nextPrime(1021), 1021);
  assert.equal(nextPrime(1022), 1031);
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

test("removing one of 10 backends moves its slots and none of the others", () => {
  const all = names(10);
  const M = maglevSize(10);
  const before = maglevTable(eq(all), M, eq(all));
  for (const gone of all) {
    const after = maglevTable(eq(all.filter((n) => n !== gone)), M, eq(all));
    for (let i = 0; i < M; i++) {
      if (before[i] === gone) assert.notEqual(after[i], gone);
      else assert.equal(after[i], before[i], `${gone}: slot ${i} moved`);
    }
    // …and a recovery gives back exactly the same table.
    assert.deepEqual(maglevTable(eq(all), M, eq(all)), before);
  }
});

/** Random backend names, as operators write them (address:port). */
const randomNames = (n: number) =>
  Array.from(
    { length: n },
    () => `10.${[...randomBytes(3)].join(".")}:${1 + (randomBytes(2).readUInt16BE() % 65535)}`,
  );

function shares(t: string[]): number[] {
  return [...count(t).values()];
}

/** Share of the slots not held by `gone` that change owner between two tables. */
function othersMoved(before: string[], after: string[], gone: string): number {
  let moved = 0;
  let others = 0;
  for (let i = 0; i < before.length; i++) {
    if (before[i] === gone) continue;
    others++;
    if (after[i] !== before[i]) moved++;
  }
  return moved / others;
}

test("the paper's bounds over N = 1..1000 and random names: shares within 1%, disruption within 2%", () => {
  for (const n of [1, 2, 3, 4, 5, 7, 10, 16, 20, 33, 50, 100, 250, 500, 1000]) {
    const M = maglevSize(n);
    for (let trial = 0; trial < (n <= 100 ? 3 : 1); trial++) {
      const all = randomNames(n);
      const table = maglevTable(eq(all), M, eq(all));
      assert.equal(table.length, M);
      const balance = Math.max(...shares(table)) / (M / n);
      assert.ok(balance <= 1.01, `N=${n} M=${M}: max/mean ${balance}`);
      if (n < 2) continue;
      for (const gone of all.slice(0, 3)) {
        const after = maglevTable(eq(all.filter((x) => x !== gone)), M, eq(all));
        assert.equal(count(after).get(gone), undefined);
        const moved = othersMoved(table, after, gone);
        assert.ok(moved <= 0.02, `N=${n} M=${M}: ${gone} left, ${moved} of the others moved`);
        const b = Math.max(...shares(after)) / (M / (n - 1));
        assert.ok(b <= 1.01, `N=${n} M=${M}: ${gone} left, max/mean ${b}`);
      }
    }
  }
});

test("weight changes move only the slots the new shares need", () => {
  const all = randomNames(8);
  const M = maglevSize(8);
  const before = maglevTable(eq(all), M, eq(all));
  const heavier = all.map((name, i) => ({ name, weight: i === 0 ? 2 : 1 }));
  const after = maglevTable(heavier, M, eq(all));
  const c = count(after);
  const want = (2 / 9) * M;
  assert.ok(Math.abs((c.get(all[0] ?? "") ?? 0) - want) <= 1, `${c.get(all[0] ?? "")} vs ${want}`);
  let moved = 0;
  for (let i = 0; i < M; i++) if (after[i] !== before[i]) moved++;
  // The heavier backend needs (2/9 − 1/8)·M more slots; nothing else moves.
  assert.ok(moved <= Math.ceil((2 / 9 - 1 / 8) * M) + 1, `moved ${moved}`);
});

test("a configuration without the backend re-populates (plain Maglev): still balanced", () => {
  const all = names(20);
  const M = maglevSize(20);
  const after = maglevTable(eq(all.slice(1)), M);
  assert.ok(Math.max(...shares(after)) / (M / 19) <= 1.01);
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

/** Slots that change owner between two tables of one size. */
const changed = (a: readonly string[], b: readonly string[]) => a.filter((x, i) => b[i] !== x).length;
const balanceOf = (t: string[], n: number) => Math.max(...shares(t)) / (t.length / n);

test("config edits deal from the configured table in force, over N = 1..1000: a removal moves only the removed backend's slots, an add only the slots it takes; shares within 1%", () => {
  for (const n of [1, 2, 3, 4, 5, 7, 9, 10, 14, 20, 33, 50, 100, 250, 500, 1000]) {
    const M = maglevSize(n);
    for (let trial = 0; trial < (n <= 100 ? 3 : 1); trial++) {
      const all = randomNames(n);
      const base = maglevBase(eq(all), M);
      assert.ok(balanceOf(base, n) <= 1.01);
      if (n >= 2 && maglevSize(n - 1) === M) {
        for (const gone of all.slice(0, 3)) {
          const after = maglevBase(eq(all.filter((x) => x !== gone)), M, base);
          assert.equal(count(after).get(gone), undefined);
          assert.equal(othersMoved(base, after, gone), 0, `N=${n}: ${gone} removed`);
          assert.ok(balanceOf(after, n - 1) <= 1.01, `N=${n}: ${gone} removed, ${balanceOf(after, n - 1)}`);
        }
      }
      if (maglevSize(n + 1) === M) {
        const [extra = ""] = randomNames(1);
        const after = maglevBase(eq([...all, extra]), M, base);
        const taken = count(after).get(extra) ?? 0;
        // Every slot that moved went to the new backend, and it holds just its share.
        assert.equal(changed(base, after), taken, `N=${n}: ${extra} added`);
        assert.ok(Math.abs(taken - M / (n + 1)) <= 1, `N=${n}: ${extra} took ${taken} of ${M}`);
        assert.ok(balanceOf(after, n + 1) <= 1.01);
      }
    }
  }
});

test("a config weight change moves only the slots the new shares need; an unchanged config keeps the very table", () => {
  const all = randomNames(8);
  const M = maglevSize(8);
  const base = maglevBase(eq(all), M);
  assert.equal(maglevBase(eq(all), M, base), base);
  const heavier = all.map((name, i) => ({ name, weight: i === 0 ? 2 : 1 }));
  const after = maglevBase(heavier, M, base);
  assert.ok(changed(base, after) <= Math.ceil((2 / 9 - 1 / 8) * M) + 1, `moved ${changed(base, after)}`);
  // Health is dealt from it as before: a failure frees only the failed backend's slots.
  const live = maglevTable(eq(all.slice(1)), M, heavier, after);
  assert.equal(othersMoved(after, live, all[0] ?? ""), 0);
});

test("a new size (N crosses a step) or no table in force: populated as plain Maglev", () => {
  const all = names(10);
  const base = maglevBase(eq(all), maglevSize(10));
  const eleven = [...all, "198.51.100.99:80"];
  assert.deepEqual(maglevBase(eq(eleven), maglevSize(11), base), maglevBase(eq(eleven), maglevSize(11)));
  const pools = maglevPools([
    ...eq(all).map((b) => ({ ...b, backup: false })),
    { name: "x", weight: 1, backup: true },
  ]);
  assert.equal(pools.regular, base);
  assert.deepEqual(new Set(pools.backup), new Set(["x"]));
});

test("the planner passes the plan in force: a config edit that removes or adds a backend moves only what it must", () => {
  const all = names(9);
  const p1 = planServices(webService(all), {});
  const before = p1?.services[0]?.slots ?? [];
  const gone = all[4] ?? "";
  const removed = planServices(webService(all.filter((b) => b !== gone)), {}, undefined, p1);
  assert.equal(othersMoved(before, removed?.services[0]?.slots ?? [], gone), 0);
  // Without the plan in force (a cold start): plain Maglev, which moves others too.
  const cold = planServices(webService(all.filter((b) => b !== gone)), {});
  assert.ok(othersMoved(before, cold?.services[0]?.slots ?? [], gone) > 0);
  const added = planServices(webService([...all, "198.51.100.77:80"]), {}, undefined, p1);
  const after = added?.services[0]?.slots ?? [];
  assert.equal(changed(before, after), count(after).get("198.51.100.77:80"));
  // A failure after the edit is dealt from the edited table: recovery gives it back exactly.
  const down = planServices(
    webService([...all, "198.51.100.77:80"]),
    { web: { [all[0] ?? ""]: { up: false } } },
    undefined,
    added,
  );
  assert.equal(othersMoved(after, down?.services[0]?.slots ?? [], all[0] ?? ""), 0);
  const up = planServices(webService([...all, "198.51.100.77:80"]), {}, undefined, down);
  assert.deepEqual(up?.services[0]?.slots, after);
});
