import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { diff, replaceElements } from "../../src/nft/diff.ts";
import { findObject, type NftTable, type Ruleset } from "../../src/nft/model.ts";
import { chain, counter, kv, map, set } from "../../src/nft/objects.ts";
import { allHealthy, desiredState, type HealthView } from "../../src/plan/desired.ts";
import { groupOf } from "../../src/plan/nft-groups.ts";
import { groupSlotsMap } from "../../src/nft/names.ts";
import { wanFacts } from "../../testkit/dataplane-fakes.ts";

const table = (...objects: NftTable["objects"]): Ruleset => ({
  tables: [{ family: "inet", name: "nflb", objects }],
  absent: [],
});
const lines = (s: string) => s.split("\n").filter(Boolean);

test("equal models: an empty transaction", () => {
  const m = table(set("s", "ip saddr", ["192.0.2.1"]), chain("c", ["ip saddr @s accept"]));
  assert.deepEqual(diff(m, table(set("s", "ip saddr", ["192.0.2.1"]), chain("c", ["ip saddr @s accept"]))), {
    script: "",
    replaced: [],
  });
});

test("a changed map value is a delete and an add of that element only", () => {
  const els = (b: string) => [kv("0", "goto a"), kv("1", `goto ${b}`), kv("2", "goto a"), kv("3", "goto a")];
  const d = diff(
    table(map("m", "numgen inc mod 1 : verdict", els("a"))),
    table(map("m", "numgen inc mod 1 : verdict", els("b"))),
  );
  // The addition declares the map again in a table block: nft reads back no element for that.
  assert.equal(
    d.script,
    [
      "delete element inet nflb m { 1 }",
      "table inet nflb {",
      "\tmap m {",
      "\t\ttypeof numgen inc mod 1 : verdict",
      "\t\telements = { 1 : goto b }",
      "\t}",
      "}",
      "",
    ].join("\n"),
  );
});

test("most elements new: flush and write the map whole; an emptied map is flushed", () => {
  const a = table(map("m", "ct mark : verdict", [kv("1", "goto a"), kv("2", "goto a")]));
  const b = table(map("m", "ct mark : verdict", [kv("1", "goto b"), kv("3", "goto b")]));
  assert.equal(
    diff(a, b).script,
    "flush map inet nflb m\ntable inet nflb {\n\tmap m {\n\t\ttypeof ct mark : verdict\n\t\telements = { 1 : goto b, 3 : goto b }\n\t}\n}\n",
  );
  assert.equal(diff(a, table(map("m", "ct mark : verdict", []))).script, "flush map inet nflb m\n");
});

test("an auto-merge interval set is rewritten whole (merged elements cannot be deleted by their old bounds)", () => {
  const s = (keys: string[]) => table(set("p", "ip daddr", keys, { flags: ["interval"], autoMerge: true }));
  assert.equal(
    diff(
      s(["192.0.2.0/25", "198.51.100.0/24", "203.0.113.0/24"]),
      s(["192.0.2.0/25", "198.51.100.0/24", "203.0.113.0/25"]),
    ).script,
    "flush set inet nflb p\ntable inet nflb {\n\tset p {\n\t\ttypeof ip daddr\n\t\tflags interval\n\t\tauto-merge\n\t\telements = { 192.0.2.0/25, 198.51.100.0/24, 203.0.113.0/25 }\n\t}\n}\n",
  );
});

test("elements the packet path or another writer owns are never touched", () => {
  const sticky = (owner: "packet" | "external") =>
    map("st", "ip saddr . ip daddr : ct mark", [], {
      flags: ["dynamic", "timeout"],
      timeout: "30m",
      size: 65536,
      owner,
    });
  const withEls = (owner: "packet" | "external") => ({
    ...sticky(owner),
    elements: [kv("192.0.2.1 . 192.0.2.2", "0x100")],
  });
  for (const o of ["packet", "external"] as const) {
    assert.equal(diff(table(withEls(o)), table(sticky(o))).script, "");
    assert.equal(diff(table(sticky(o)), table(withEls(o))).script, "");
  }
});

test("a chain whose rules changed is flushed and refilled; one that walks a changed map restarts with it", () => {
  const m = (v: string) =>
    map("slots", "numgen inc mod 1 : verdict", [kv("0", `goto ${v}`), kv("1", "goto x"), kv("2", "goto x")]);
  const c = { ...chain("svc", ["numgen inc mod 3 vmap @slots"]), restartWith: "slots" };
  assert.equal(
    diff(
      table(m("x"), c, chain("x", ["accept"]), chain("y", ["accept"])),
      table(m("y"), c, chain("x", ["drop"]), chain("y", ["accept"])),
    ).script,
    [
      "flush chain inet nflb x",
      "add rule inet nflb x drop",
      "flush chain inet nflb svc",
      "add rule inet nflb svc numgen inc mod 3 vmap @slots",
      "delete element inet nflb slots { 0 }",
      "table inet nflb {",
      "\tmap slots {",
      "\t\ttypeof numgen inc mod 1 : verdict",
      "\t\telements = { 0 : goto y }",
      "\t}",
      "}",
      "",
    ].join("\n"),
  );
});

test("references: new objects first in one block, removed ones last (rules flushed before what they used)", () => {
  const before = table(
    set("old_set", "ip saddr", ["192.0.2.1"]),
    counter("old_counter"),
    map("v", "ct mark : verdict", [kv("0x1", "goto old_chain")]),
    chain("old_chain", ["ip saddr @old_set counter name old_counter"]),
    chain("decide", ["ip saddr @old_set goto old_chain"]),
  );
  const after = table(
    set("new_set", "ip saddr", ["192.0.2.2"]),
    map("v", "ct mark : verdict", [kv("0x1", "goto new_chain")]),
    chain("new_chain", ["ip saddr @new_set accept"]),
    chain("decide", ["ip saddr @new_set goto new_chain"]),
  );
  assert.equal(
    diff(before, after).script,
    [
      "table inet nflb {",
      "\tset new_set {",
      "\t\ttypeof ip saddr",
      "\t\telements = { 192.0.2.2 }",
      "\t}",
      "\tchain new_chain {",
      "\t\tip saddr @new_set accept",
      "\t}",
      "}",
      "flush chain inet nflb decide",
      "add rule inet nflb decide ip saddr @new_set goto new_chain",
      "flush map inet nflb v",
      "table inet nflb {",
      "\tmap v {",
      "\t\ttypeof ct mark : verdict",
      "\t\telements = { 0x1 : goto new_chain }",
      "\t}",
      "}",
      "flush chain inet nflb old_chain",
      "delete set inet nflb old_set",
      "delete chain inet nflb old_chain",
      "delete counter inet nflb old_counter",
      "",
    ].join("\n"),
  );
});

test("a change nft cannot make in place replaces that table only; a table no longer wanted is deleted", () => {
  const a = table(set("s", "ip saddr", [], { flags: ["interval"] }));
  const b = table(set("s", "ip saddr", []));
  const d = diff(a, b);
  assert.deepEqual(d.replaced, [{ table: "inet nflb", reason: "set s changed its declaration" }]);
  assert.match(d.script, /^add table inet nflb\ndelete table inet nflb\ntable inet nflb \{\n/);
  const arp: NftTable = { family: "arp", name: "nflb", objects: [chain("x", ["accept"])] };
  assert.equal(
    diff({ tables: [...b.tables, arp], absent: [] }, { tables: b.tables, absent: [arp] }).script,
    "delete table arp nflb\n",
  );
  const base = (priority: string) =>
    table(chain("pre", ["accept"], { type: "filter", hook: "prerouting", priority }));
  assert.equal(diff(base("mangle"), base("mangle - 5")).replaced[0]?.reason, "chain pre changed its hook");
});

test("an external writer replaces its set whole: flush, then the set declared again with its elements", () => {
  const owned = set("cluster_owned", "numgen random mod 1", [], { flags: ["timeout"], owner: "external" });
  const els = [
    { key: "3", timeout: "900ms" },
    { key: "4", timeout: "900ms" },
  ];
  assert.equal(
    replaceElements("inet nflb", { ...owned, elements: els }),
    [
      "flush set inet nflb cluster_owned",
      "table inet nflb {",
      "\tset cluster_owned {",
      "\t\ttypeof numgen random mod 1",
      "\t\tflags timeout",
      "\t\telements = { 3 timeout 900ms, 4 timeout 900ms }",
      "\t}",
      "}",
      "",
    ].join("\n"),
  );
  assert.equal(replaceElements("inet nflb", owned), "flush set inet nflb cluster_owned\n");
});

// The daemon's changes, end to end through planning: each is a transaction of only what changed.
const facts = wanFacts();
const cfg = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, weight: 2 }
  isp2: { interface: wan2, gateway: 100.64.2.1 }
  isp3: { interface: wan3, gateway: 100.64.3.1 }
balance: { method: source-hash }
rules:
  - { name: bank, destination: [192.0.2.0/24], via: [isp2, isp1], sticky: 30m }
services:
  web:
    listen: 203.0.113.10:80
    scheduler: maglev
    backends: [{ address: 198.51.100.1:80 }, { address: 198.51.100.2:80 }, { address: 198.51.100.3:80 }]
`);
const H = allHealthy(cfg);
const model = (h: HealthView) => desiredState(cfg, h, facts).model;

test("an uplink health change: the moved hash buckets, the live-uplink map and the rule's target", () => {
  const d = diff(model(H), model({ ...H, uplinks: { ...H.uplinks, isp2: { up: false } } }));
  assert.deepEqual(d.replaced, []);
  const l = lines(d.script);
  assert.deepEqual(l.slice(0, 2), [
    "flush chain inet nflb rule_0_via",
    "add rule inet nflb rule_0_via goto up_isp1_pin",
  ]);
  // isp2's 256 of 1024 buckets move (hash placement: nobody else's), and isp2 leaves sticky_live4.
  const del = /^delete element inet nflb split4 \{ (.*) \}$/.exec(l[2] ?? "");
  assert.ok(del, d.script);
  assert.equal(del[1]?.split(", ").length, 256);
  assert.equal(l[3], "delete element inet nflb sticky_live4 { 0x00000200 }");
  assert.deepEqual(l.slice(4, 7), [
    "table inet nflb {",
    "\tmap split4 {",
    "\t\ttypeof numgen random mod 1 : verdict",
  ]);
  const add = /^\t\telements = \{ (.*) \}$/.exec(l[7] ?? "");
  assert.ok(add, d.script);
  assert.equal(add[1]?.split(", ").length, 256);
  assert.ok(add[1]?.split(", ").every((e) => !e.includes("isp2")));
  assert.deepEqual(l.slice(8), ["\t}", "}"]);
  // Nothing about the sticky maps, counters, prefixes or services.
  assert.doesNotMatch(d.script, /sticky4|sticky6|counter|rule_0_dst4|svc_/);
});

test("a weight change: the split's elements and the balance rule's modulus", () => {
  const c = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, weight: 2 }
  isp2: { interface: wan2, gateway: 100.64.2.1 }
  isp3: { interface: wan3, gateway: 100.64.3.1 }
`);
  const h = allHealthy(c);
  const before = desiredState(c, h, facts).model;
  const after = desiredState(
    c,
    { ...h, uplinks: { ...h.uplinks, isp3: { up: true, weight: 3 } } },
    facts,
  ).model;
  assert.equal(
    diff(before, after).script,
    [
      "flush chain inet nflb balance4",
      "add rule inet nflb balance4 numgen random mod 6 vmap @split4",
      "delete element inet nflb split4 { 3 }",
      "table inet nflb {",
      "\tmap split4 {",
      "\t\ttypeof numgen random mod 1 : verdict",
      "\t\tflags interval",
      "\t\telements = { 3-5 : goto up_isp3_pin }",
      "\t}",
      "}",
      "",
    ].join("\n"),
  );
});

test("a backend change: that service's moved slots, nothing else", () => {
  const d = diff(model(H), model({ ...H, services: { web: { "198.51.100.2:80": { up: false } } } }));
  const l = lines(d.script);
  // web's slots live in its group's map, keyed VIP . port . slot.
  const group = groupSlotsMap(4, "tcp", groupOf("web"));
  const dels = l.filter((x) => x.startsWith(`delete element inet nflb ${group} { `));
  assert.ok(
    dels.every((x) =>
      x
        .slice(x.indexOf("{ ") + 2, -2)
        .split(", ")
        .every((k) => k.startsWith("203.0.113.10 . 80 . ")),
    ),
    "only web's elements are deleted",
  );
  assert.deepEqual(l.slice(dels.length), [
    "table inet nflb {",
    `\tmap ${group} {`,
    "\t\ttypeof ip daddr . tcp dport . numgen inc mod 1 : ip daddr . tcp dport",
    l[dels.length + 3],
    "\t}",
    "}",
  ]);
  // Maglev moves only the dead backend's slots (about a third), every one to a live backend.
  const elements = l[dels.length + 3] ?? "";
  assert.match(elements, /^\t\telements = \{ .* \}$/);
  const moved = elements.slice(elements.indexOf("{ ") + 2, -2).split(", ");
  const slots = findObject(model(H).tables[0] as NftTable, "map", group);
  const total = slots?.elements.length ?? 0;
  assert.ok(moved.length > total / 4 && moved.length < total / 2, `${moved.length} slots moved`);
  assert.ok(
    moved.every((e) => !e.endsWith(": 198.51.100.2 . 80")),
    "no slot goes to the dead backend",
  );
});
