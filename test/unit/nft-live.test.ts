import { test } from "node:test";
import assert from "node:assert/strict";
import { canonicalRule, liveTransaction, parseListing } from "../../src/nft/live.ts";
import type { NftTable, Ruleset } from "../../src/nft/model.ts";
import { chain, counter, kv, map, set } from "../../src/nft/objects.ts";
import { NftFake } from "../../src/nft/ruleset/fake.ts";
import { serialize } from "../../src/nft/serialize.ts";

const model = (objects: NftTable["objects"], absent: Ruleset["absent"] = []): Ruleset => ({
  tables: [{ family: "inet", name: "nflb", comment: "managed by nflb", objects }],
  absent,
});

const wanted = (mod = 2, prefixes = ["198.18.0.0/24", "198.18.2.0/24", "198.18.4.0/24"]) =>
  model([
    counter("up_a_conns"),
    set("dst", "ip daddr", prefixes, { flags: ["interval"], autoMerge: true }),
    map("split", "numgen random mod 1 : verdict", [kv("0", "goto up_a"), kv("1", "goto up_b")], {
      flags: ["interval"],
    }),
    map("sticky", "ct mark : verdict", [], { owner: "packet", timeout: "30m" }),
    chain("up_a", ["meta mark set meta mark and 0xffff00ff or 0x00000100", "counter name up_a_conns"]),
    chain("up_b", ["meta mark set meta mark and 0xffff00ff or 0x0000ff00"]),
    chain(
      "prerouting",
      ["ct mark and 0x0000ff00 == 0 ip daddr @dst goto up_a", `numgen random mod ${mod} vmap @split`],
      { type: "filter", hook: "prerouting", priority: "mangle", policy: "accept" },
    ),
  ]);

/** The table as nft 1.0.6 lists it: its own object order, folded masks, sorted and wrapped elements. */
const listing = (o: { mod?: number; dst?: string; sticky?: string; extra?: string } = {}) =>
  [
    "table inet nflb {",
    '\tcomment "managed by nflb"',
    "\tcounter up_a_conns {",
    "\t\tpackets 12 bytes 3400",
    "\t}",
    "",
    "\tset dst {",
    "\t\ttypeof ip daddr",
    "\t\tflags interval",
    "\t\tauto-merge",
    `\t\telements = { ${o.dst ?? "198.18.0.0/24, 198.18.2.0/24,\n\t\t\t     198.18.4.0/24"} }`,
    "\t}",
    "",
    "\tmap split {",
    "\t\ttypeof numgen random mod 1 : verdict",
    "\t\tflags interval",
    "\t\telements = { 0 : goto up_a, 1 : goto up_b }",
    "\t}",
    "",
    "\tmap sticky {",
    "\t\ttypeof ct mark : verdict",
    "\t\ttimeout 30m",
    ...(o.sticky ? [`\t\telements = { ${o.sticky} }`] : []),
    "\t}",
    "",
    "\tchain up_a {",
    "\t\tmeta mark set meta mark & 0xffff01ff | 0x00000100",
    '\t\tcounter name "up_a_conns"',
    "\t}",
    "",
    "\tchain up_b {",
    "\t\tmeta mark set meta mark | 0x0000ff00",
    "\t}",
    "",
    ...(o.extra ? [`\tchain ${o.extra} {`, "\t}", ""] : []),
    "\tchain prerouting {",
    "\t\ttype filter hook prerouting priority mangle; policy accept;",
    "\t\tct mark & 0x0000ff00 == 0x00000000 ip daddr @dst goto up_a",
    `\t\tnumgen random mod ${o.mod ?? 2} vmap @split`,
    "\t}",
    "}",
    "",
  ].join("\n");

const live = (text: string | null, arp: string | null = null) =>
  new Map([
    ["inet nflb", text],
    ["arp nflb", arp],
  ]);

test("the kernel's own printing of the wanted table: nothing to send", () => {
  assert.equal(liveTransaction(wanted(), live(listing())), "");
});

test("elements the packet path wrote are not compared", () => {
  const text = listing({ sticky: "0x00000100 expires 29m58s : goto up_a" });
  assert.equal(liveTransaction(wanted(), live(text)), "");
});

test("a rule that differs (an uplink left the rotation): that chain is flushed and refilled", () => {
  assert.equal(
    liveTransaction(wanted(), live(listing({ mod: 1 }))),
    [
      "flush chain inet nflb prerouting",
      "add rule inet nflb prerouting ct mark and 0x0000ff00 == 0 ip daddr @dst goto up_a",
      "add rule inet nflb prerouting numgen random mod 2 vmap @split",
      "",
    ].join("\n"),
  );
});

test("elements that differ: the set is flushed and written again, declared in a block", () => {
  const script = liveTransaction(wanted(), live(listing({ dst: "198.18.0.0/24, 203.0.113.0/24" })));
  assert.equal(
    script,
    [
      "flush set inet nflb dst",
      "table inet nflb {",
      "\tset dst {",
      "\t\ttypeof ip daddr",
      "\t\tflags interval",
      "\t\tauto-merge",
      "\t\telements = { 198.18.0.0/24, 198.18.2.0/24, 198.18.4.0/24 }",
      "\t}",
      "}",
      "",
    ].join("\n"),
  );
});

test("an object the model does not have, or a missing table: only a full replace", () => {
  assert.equal(liveTransaction(wanted(), live(listing({ extra: "by_hand" }))), null);
  assert.equal(liveTransaction(wanted(), live(null)), null);
  assert.equal(liveTransaction(wanted(), new Map()), null);
  const noComment = listing().replace('\tcomment "managed by nflb"\n', "");
  assert.equal(liveTransaction(wanted(), live(noComment)), null);
  const otherHook = listing().replace("priority mangle;", "priority filter;");
  assert.equal(liveTransaction(wanted(), live(otherHook)), null);
  assert.equal(parseListing("table inet nflb {\n\tflowtable f {\n\t}\n}\n"), null);
});

test("a table the model wants gone is deleted in the same transaction", () => {
  const m = { ...wanted(), absent: [{ family: "arp" as const, name: "nflb" }] };
  assert.equal(liveTransaction(m, live(listing(), "table arp nflb {\n}\n")), "delete table arp nflb\n");
  assert.equal(liveTransaction(m, live(listing(), null)), "");
});

test("the transaction turns the listed table into the wanted one (fake nft)", () => {
  const want = wanted(2, ["198.18.0.0/24", "203.0.113.0/24"]);
  const before = wanted(1, ["198.18.0.0/24", "198.18.2.0/24"]);
  const fake = new NftFake();
  fake.apply(serialize(before));
  const script = liveTransaction(want, live(listing({ mod: 1, dst: "198.18.0.0/24, 198.18.2.0/24" })));
  assert.ok(script);
  fake.apply(script);
  const after = new NftFake();
  after.apply(serialize(want));
  assert.deepEqual(
    [...(fake.ruleset.table("inet", "nflb")?.sets.get("dst")?.elements ?? [])],
    [...(after.ruleset.table("inet", "nflb")?.sets.get("dst")?.elements ?? [])],
  );
  assert.deepEqual(
    fake.ruleset
      .table("inet", "nflb")
      ?.chains.get("prerouting")
      ?.rules.map((r) => r.text),
    after.ruleset
      .table("inet", "nflb")
      ?.chains.get("prerouting")
      ?.rules.map((r) => r.text),
  );
});

test("canonical rules: the same meaning meets, a different one does not", () => {
  const same = (a: string, b: string) => assert.equal(canonicalRule(a), canonicalRule(b), `${a} | ${b}`);
  const differ = (a: string, b: string) => assert.notEqual(canonicalRule(a), canonicalRule(b), `${a} | ${b}`);
  same(
    "meta mark set meta mark and 0xffff00ff or 0x00000100",
    "meta mark set meta mark & 0xffff01ff | 0x00000100",
  );
  same("ct mark set ct mark and 0xffff00ff or 0x0000ff00", "ct mark set ct mark | 0x0000ff00");
  same("ct mark and 0x0000ff00 == 0 goto x", "ct mark & 0x0000ff00 == 0x00000000 goto x");
  same("counter name up_a_conns masquerade", 'counter name "up_a_conns" masquerade');
  differ(
    "meta mark set meta mark and 0xffff00ff or 0x00000100",
    "meta mark set meta mark & 0xffff01ff | 0x00000200",
  );
  differ("ct mark and 0x0000ff00 == 0 goto x", "ct mark & 0x0000ff00 == 0x00000100 goto x");
  differ("numgen random mod 32 vmap @split", "numgen random mod 31 vmap @split");
  differ('iifname "u0" accept', 'iifname "u1" accept');
  // Folding is for marks only: a 16-bit field's all-ones is not 0xffffffff.
  differ("th dport and 0xffff == 22 accept", "th dport == 22 accept");
});
