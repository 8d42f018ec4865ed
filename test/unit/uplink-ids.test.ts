import { test } from "node:test";
import assert from "node:assert/strict";
import { assignSlots, removedSlots, type SlotInputs } from "../../src/plan/uplink-ids.ts";
import { parseConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/config/issues.ts";
import { planUplinks, allUp, uplinkSlots } from "../../src/plan/uplinks.ts";
import { planRouting } from "../../src/plan/routing.ts";
import { checkOwnedRanges } from "../../src/config/owned-ranges.ts";
import { slotOfMark, markLayout, type MarkLayout } from "../../src/config/marks.ts";
import { marksIn, stickyElements } from "../../src/system/conntrack-marks.ts";
import { carried } from "../../src/daemon/reconciler.ts";
import type { Facts } from "../../src/plan/types.ts";
import { heldFor } from "../../src/apply/uplink-slots.ts";
import { issuesOf } from "../../testkit/config-text.ts";
import { wanFacts } from "../../testkit/dataplane-fakes.ts";

const inputs = (o: Partial<SlotInputs>): SlotInputs => ({
  names: [],
  pins: {},
  previous: {},
  held: new Set(),
  maxSlot: 254,
  usable: () => true,
  ...o,
});

const slots = (o: Partial<SlotInputs>) => {
  const r = assignSlots(inputs(o));
  assert.ok("slots" in r, JSON.stringify(r));
  return r.slots;
};

test("without a history, slots follow the config's order from 1", () => {
  assert.deepEqual(slots({ names: ["isp1", "isp2", "isp3"] }), { isp1: 1, isp2: 2, isp3: 3 });
});

test("existing names keep their slot whatever the order; a new name first in the YAML takes the lowest free", () => {
  const previous = { isp1: 1, isp2: 2 };
  assert.deepEqual(slots({ names: ["lte", "isp2", "isp1"], previous }), { isp1: 1, isp2: 2, lte: 3 });
  // A removed uplink's slot is free again once conntrack no longer holds its mark …
  assert.deepEqual(slots({ names: ["isp2", "lte"], previous: { isp1: 1, isp2: 2 } }), { isp2: 2, lte: 1 });
  // … and not while it does: the next free one is taken.
  assert.deepEqual(slots({ names: ["isp2", "lte"], previous: { isp1: 1, isp2: 2 }, held: new Set([1]) }), {
    isp2: 2,
    lte: 3,
  });
});

test("pins win, even over a previous owner; the displaced name gets a free slot", () => {
  assert.deepEqual(slots({ names: ["isp1", "isp2"], pins: { isp2: 1 }, previous: { isp1: 1, isp2: 2 } }), {
    isp2: 1,
    isp1: 2,
  });
  assert.deepEqual(slots({ names: ["a", "b"], pins: { b: 7 } }), { b: 7, a: 1 });
});

test("unusable slots (kernel or tool tables) and the bound are skipped; held slots are the last resort", () => {
  assert.deepEqual(slots({ names: ["a", "b"], usable: (k) => k !== 1 }), { a: 2, b: 3 });
  // Everything else taken: a held slot beats no slot.
  assert.deepEqual(slots({ names: ["a", "b"], maxSlot: 2, previous: { a: 1 }, held: new Set([2]) }), {
    a: 1,
    b: 2,
  });
  const r = assignSlots(inputs({ names: ["a", "b", "c"], maxSlot: 2 }));
  assert.ok("error" in r && /no free uplink slot for c/.test(r.error));
  // A previous slot now out of bounds (mark_mask narrowed) is given up.
  assert.deepEqual(slots({ names: ["a"], previous: { a: 9 }, maxSlot: 3 }), { a: 1 });
});

test("forgotten slots: names the new assignment lacks, and the old slot of names that moved", () => {
  assert.deepEqual(removedSlots({ isp1: 1, isp2: 2, isp3: 3 }, { isp1: 1, isp3: 3 }), [["isp2", 2]]);
  // isp3 pinned to isp1's slot: isp1 moves; both old slots' connections are the wrong uplink's now.
  assert.deepEqual(removedSlots({ isp1: 1, isp3: 3 }, { isp3: 1, isp1: 2 }), [
    ["isp1", 1],
    ["isp3", 3],
  ]);
});

const yaml = (order: string[], extra = "") =>
  parseConfig(
    "version: 1\nuplinks:\n" +
      order
        .map(
          (n) =>
            `  ${n}: { interface: ${n === "lte" ? "wwan0" : `wan${n.slice(3)}`}, weight: ${n === "isp1" ? 3 : 1}${extra && n === "isp2" ? extra : ""} }`,
        )
        .join("\n") +
      "\nbalance: { method: source-hash }\n",
  );

const facts = (uplinkSlots?: Record<string, number>): Facts => ({
  interfaces: new Map(),
  ...(uplinkSlots ? { uplinkSlots } : {}),
});

test("a reordered config with the recorded slots plans the same marks, tables, priorities and hash buckets", () => {
  const a = yaml(["isp1", "isp2", "isp3"]);
  const pa = planUplinks(a, allUp(a), facts());
  assert.ok(pa);
  const recorded = Object.fromEntries(pa.uplinks.map((u) => [u.name, u.slot]));
  const b = yaml(["lte", "isp3", "isp2", "isp1"]);
  const pb = planUplinks(b, allUp(b), facts(recorded));
  assert.ok(pb);
  const id = (p: typeof pa) =>
    Object.fromEntries(p.uplinks.filter((u) => u.name !== "lte").map((u) => [u.name, [u.mark, u.table]]));
  assert.deepEqual(id(pb), id(pa));
  assert.deepEqual(id(pa), { isp1: [0x100, 201], isp2: [0x200, 202], isp3: [0x300, 203] });
  assert.equal(pb.uplinks.find((u) => u.name === "lte")?.mark, 0x400);
  const prio = (p: typeof pa, name: string) =>
    planRouting(p).rules.find((r) => r.table === p.uplinks.find((u) => u.name === name)?.table && r.fwmark)
      ?.priority;
  for (const n of ["isp1", "isp2", "isp3"]) assert.equal(prio(pb, n), prio(pa, n), n);
  // The same three uplinks in another order: the same seed and the same buckets, so no client moves.
  const c = yaml(["isp3", "isp1", "isp2"]);
  const pc = planUplinks(c, allUp(c), facts(recorded));
  assert.equal(pc?.hashSeed, pa.hashSeed);
  assert.deepEqual(pc?.split4, pa.split4);
  // Owned tables reach the highest slot, not the count.
  const gap = planUplinks(a, allUp(a), facts({ isp1: 1, isp2: 2, isp3: 7 }));
  assert.ok(gap);
  assert.deepEqual(planRouting(gap).tables, { from: 200, to: 207 });
});

test("uplinks.NAME.id pins the slot; a pin used twice or too high is an error naming its path and line", () => {
  const c = yaml(["isp1", "isp2"], ", id: 5");
  assert.deepEqual(uplinkSlots(c, facts()), { isp2: 5, isp1: 1 });
  const dup = issuesOf(`version: 1
uplinks:
  isp1: { interface: wan1, id: 2 }
  isp2:
    interface: wan2
    id: 2
`);
  assert.equal(dup.length, 1);
  assert.deepEqual(dup[0]?.path, ["uplinks", "isp2", "id"]);
  assert.equal(dup[0]?.line, 6);
  assert.match(dup[0]?.message ?? "", /already uplink isp1's/);
  const high = issuesOf("version: 1\nmark_mask: 0x3\nuplinks:\n  isp1: { interface: wan1, id: 3 }\n");
  assert.match(high[0]?.message ?? "", /above the highest slot 2/);
  const kernel = issuesOf("version: 1\nuplinks:\n  isp1: { interface: wan1, id: 54 }\n");
  assert.ok(kernel.some((i) => /kernel/.test(i.message) && i.path.join(".") === "table_base"));
  assert.throws(() => parseConfig("version: 1\nuplinks:\n  isp1: { interface: wan1, id: 0 }\n"), ConfigError);
});

test("owned tables are checked against the highest slot a pin implies, not the count", () => {
  const c = parseConfig("version: 1\ntable_base: 1000\nuplinks:\n  isp1: { interface: wan1, id: 60 }\n");
  assert.deepEqual(
    checkOwnedRanges({ ...c, table_base: 200 }).errors.map((e) => e.path),
    [["table_base"]],
  );
  assert.deepEqual(checkOwnedRanges(c).errors, []);
});

test("conntrack marks and sticky elements are read back as slots and carried elements", () => {
  const l = markLayout(0xff00) as MarkLayout;
  const text =
    "tcp 6 431999 ESTABLISHED src=198.18.0.2 dst=203.0.113.10 mark=512 use=1\n" +
    "udp 17 29 src=198.18.0.2 dst=203.0.113.10 mark=66304 use=1\nicmp 1 29 mark=0 use=1\n";
  const marks = marksIn(text, 0xff00);
  assert.deepEqual([...marks].sort(), [0x200, 0x300]);
  assert.deepEqual([...marks].map((m) => slotOfMark(l, m)).sort(), [2, 3]);
  assert.equal(slotOfMark(l, 0xff00), null, "the via: main value is no slot");
  const items = [
    {
      map: {
        name: "rule_0_sticky4",
        elem: [
          [{ elem: { val: { concat: ["198.18.0.1", "203.0.113.10"] }, expires: 599 } }, 512],
          [{ elem: { val: { concat: ["198.18.0.1", "not an address!"] }, expires: 5 } }, 512],
          [123456, 256],
        ],
      },
    },
  ];
  const els = stickyElements(items);
  assert.deepEqual(els, [
    { key: "198.18.0.1 . 203.0.113.10", mark: 512, expiresMs: 599_000 },
    { key: "123456", mark: 256, expiresMs: null },
  ]);
  assert.deepEqual(carried(els[0]!, "30m"), {
    key: "198.18.0.1 . 203.0.113.10",
    value: "0x200",
    timeout: "30m expires 599000ms",
  });
  // Never longer than the map's (possibly new, shorter) timeout.
  assert.equal(carried(els[0]!, "2m").timeout, "2m expires 120000ms");
  assert.deepEqual(carried(els[1]!, "30m"), { key: "123456", value: "0x100" });
});

test("conntrack is read for held marks only when a name is new and slots were recorded before", async () => {
  const c = yaml(["isp1", "isp2"]);
  // Nothing recorded (first start, or after nflb down): the config's order, as before; no read.
  assert.deepEqual(await heldFor(c, {}), {});
  // Every name has its slot: nothing to decide, no read.
  assert.deepEqual(await heldFor(c, { isp1: 1, isp2: 2, gone: 3 }), {});
});

test("a reordered config with the recorded slots is the same model and routing: its reload changes nothing", async () => {
  const { desiredState, allHealthy } = await import("../../src/plan/desired.ts");
  const { diff } = await import("../../src/nft/diff.ts");
  const cfg = (order: number[], method: string) =>
    parseConfig(
      `version: 1\nuplinks:\n${order.map((i) => `  isp${i}: { interface: wan${i}, gateway: 100.64.${i}.1, weight: ${i} }`).join("\n")}\n` +
        `balance: { method: ${method}, primary: [isp1, isp2, isp3] }\n`,
    );
  for (const method of ["random", "round-robin", "source-hash"]) {
    const a = cfg([1, 2, 3], method);
    // With addresses: the `from ADDRESS` rules' priorities must not move either.
    const { interfaces } = wanFacts();
    const da = desiredState(a, allHealthy(a), { interfaces });
    const slots = Object.fromEntries(da.uplinks?.uplinks.map((u) => [u.name, u.slot]) ?? []);
    const b = cfg([3, 1, 2], method);
    const db = desiredState(b, allHealthy(b), { interfaces, uplinkSlots: slots });
    assert.equal(diff(da.model, db.model).script, "", method);
    assert.deepEqual(db.routing, da.routing, method);
  }
});
