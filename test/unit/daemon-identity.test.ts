import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import type { Desired, HealthView } from "../../src/plan/desired.ts";
import { Reconciler, type DataplaneOps, type ReconcileInput } from "../../src/daemon/reconciler.ts";
import { silentLog } from "../../src/daemon/log.ts";
import type { StickyElement } from "../../src/system/conntrack-marks.ts";

// Stable uplink identity through the daemon's reconcile loop: reloads keep every name's mark,
// a removed uplink's connections (its mark, only that) are forgotten, a restart reads the state
// file's slots, and a full replace carries the sticky maps' live elements.

const uplink = (n: string, extra = "") =>
  `  ${n}: { interface: ${n}, gateway: 100.64.${n.length}.1${extra} }`;
const config = (names: string[], rules = "  - { name: web, source: [198.18.0.0/24], sticky: 30m }") =>
  parseConfig(`version: 1\nuplinks:\n${names.map((n) => uplink(n)).join("\n")}\nrules:\n${rules}\n`);

function input(c: Config): ReconcileInput {
  const h: HealthView = { uplinks: {}, services: {} };
  for (const n of Object.keys(c.uplinks ?? {})) h.uplinks[n] = { up: true };
  return { config: c, health: h, probeDown: new Set() };
}

function setup(o: { stateSlots?: Record<string, number>; held?: number[]; sticky?: StickyElement[] } = {}) {
  const calls: { op: string; arg?: unknown }[] = [];
  let last: { d: Desired; script: string | undefined } | undefined;
  const ops: DataplaneOps = {
    readFacts: async () => ({ interfaces: new Map() }),
    applyFull: async (d, script) => {
      last = { d, script };
      calls.push({ op: "full" });
    },
    applyNft: async () => void calls.push({ op: "nft" }),
    applyRouting: async () => void calls.push({ op: "routing" }),
    tableExists: async () => true,
    flushConntrack: async (mark, mask) => {
      calls.push({ op: "conntrack", arg: `${mark.toString(16)}/${mask.toString(16)}` });
      return 3;
    },
    purgeSticky: async (_maps, mark) => {
      calls.push({ op: "sticky", arg: mark.toString(16) });
      return 1;
    },
    slotFacts: async (_c, previous) => {
      calls.push({ op: "slotFacts", arg: previous });
      return { uplinkSlots: previous ?? o.stateSlots ?? {}, heldSlots: o.held ?? [] };
    },
    readSticky: async (maps) => new Map(maps.map((m) => [m, m.endsWith("4") ? (o.sticky ?? []) : []])),
  };
  let cur = input(config(["isp1", "isp2"]));
  const r = new Reconciler(() => cur, ops, { log: silentLog });
  const marks = () =>
    Object.fromEntries(
      (last?.d.uplinks?.uplinks ?? []).map((u) => [u.name, `${u.mark.toString(16)}@${u.table}`]),
    );
  return { r, calls, marks, set: (c: Config) => (cur = input(c)), last: () => last };
}

test("reloads keep every uplink's mark and table; a removed one's conntrack and sticky entries go, only its", async () => {
  const s = setup();
  await s.r.reconcile("start");
  assert.deepEqual(s.marks(), { isp1: "100@201", isp2: "200@202" });
  s.calls.length = 0;
  // Added first in the YAML: isp1 and isp2 keep theirs, the new link takes the next slot.
  s.set(config(["lte", "isp1", "isp2"]));
  const added = await s.r.reconcile("reload");
  assert.equal(added.action, "full");
  assert.deepEqual(s.marks(), { lte: "300@203", isp1: "100@201", isp2: "200@202" });
  assert.deepEqual(s.calls[0], { op: "slotFacts", arg: { isp1: 1, isp2: 2 } });
  assert.ok(!s.calls.some((c) => c.op === "conntrack"), "nothing flushed when nothing was removed");
  assert.ok(s.last()?.script?.includes("0x00000300"), "an in-place change that adds the new mark");
  assert.ok(!s.last()?.script?.includes("delete table"), "not a table replace");
  s.calls.length = 0;
  s.set(config(["lte", "isp2"]));
  const removed = await s.r.reconcile("reload");
  assert.deepEqual(s.marks(), { lte: "300@203", isp2: "200@202" });
  assert.deepEqual(
    s.calls.filter((c) => c.op === "conntrack" || c.op === "sticky"),
    [
      { op: "sticky", arg: "100" },
      { op: "conntrack", arg: "100/ff00" },
    ],
  );
  assert.deepEqual(removed.forgotten, [{ uplink: "isp1", conntrack: 3, sticky: 1 }]);
  // A health round with the same config reads no slot facts again.
  s.calls.length = 0;
  await s.r.reconcile("round");
  assert.ok(!s.calls.some((c) => c.op === "slotFacts"));
});

test("a restart reads the state file's slots: a reordered config keeps the marks; a name gone from it is flushed", async () => {
  const s = setup({ stateSlots: { isp2: 1, isp1: 2, old: 3 }, held: [3] });
  s.set(config(["isp1", "isp2", "new"]));
  const res = await s.r.reconcile("start");
  assert.deepEqual(s.calls[0], { op: "slotFacts", arg: null });
  // `old`'s mark is still held by conntrack when `new` is planned: `new` takes slot 4.
  assert.deepEqual(s.marks(), { isp1: "200@202", isp2: "100@201", new: "400@204" });
  assert.deepEqual(res.forgotten, [{ uplink: "old", conntrack: 3, sticky: 1 }]);
  assert.ok(s.calls.some((c) => c.op === "conntrack" && c.arg === "300/ff00"));
});

test("a structural change replaces the table with the sticky maps' live elements of uplinks that remain", async () => {
  const sticky: StickyElement[] = [
    { key: "198.18.0.2 . 203.0.113.10", mark: 0x200, expiresMs: 600_000 },
    { key: "198.18.0.3 . 203.0.113.10", mark: 0x900, expiresMs: 600_000 },
  ];
  const s = setup({ sticky });
  await s.r.reconcile("start");
  // A new sticky timeout changes the map's declaration: nft cannot do that in place.
  s.set(config(["isp1", "isp2"], "  - { name: web, source: [198.18.0.0/24], sticky: 20m }"));
  const res = await s.r.reconcile("reload");
  assert.equal(res.action, "full");
  const script = s.last()?.script ?? "";
  assert.match(script, /delete table inet nflb/);
  assert.match(
    script,
    /elements = \{ 198\.18\.0\.2 \. 203\.0\.113\.10 timeout 20m expires 600000ms : 0x200 \}/,
  );
  assert.ok(!script.includes("198.18.0.3"), "an element whose uplink is gone is not carried");
});

test("every uplink removed (a services-only config): each one's connections are forgotten under the config's mask", async () => {
  const s = setup();
  await s.r.reconcile("start");
  s.calls.length = 0;
  s.set(
    parseConfig(
      "version: 1\nservices:\n  web:\n    listen: 203.0.113.10:80\n    backends:\n      - { address: 10.1.1.1:80 }\n",
    ),
  );
  const res = await s.r.reconcile("reload");
  assert.deepEqual(
    s.calls.filter((c) => c.op === "conntrack").map((c) => c.arg),
    ["100/ff00", "200/ff00"],
  );
  assert.deepEqual(
    res.forgotten.map((f) => f.uplink),
    ["isp1", "isp2"],
  );
});

test("a pin that takes another uplink's slot: that uplink moves, and the connections of both old slots go", async () => {
  const s = setup();
  await s.r.reconcile("start");
  s.calls.length = 0;
  s.set(
    parseConfig(
      `version: 1\nuplinks:\n${uplink("isp1")}\n${uplink("isp2", ", id: 1")}\nrules:\n  - { name: web, source: [198.18.0.0/24], sticky: 30m }\n`,
    ),
  );
  const res = await s.r.reconcile("reload");
  // A swap: isp1 takes the slot isp2 left.
  assert.deepEqual(s.marks(), { isp1: "200@202", isp2: "100@201" });
  assert.deepEqual(
    s.calls.filter((c) => c.op === "conntrack").map((c) => c.arg),
    ["100/ff00", "200/ff00"],
  );
  assert.deepEqual(
    res.forgotten.map((f) => f.uplink),
    ["isp1", "isp2"],
  );
});
