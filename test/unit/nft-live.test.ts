import { test } from "node:test";
import assert from "node:assert/strict";
import { canonicalRule, liveTransaction, parseListing } from "../../src/nft/live.ts";
import type { NftTable, Ruleset } from "../../src/nft/model.ts";
import { chain, counter, kv, map, set } from "../../src/nft/objects.ts";
import { NftFake } from "../../src/nft/ruleset/fake.ts";
import { serialize } from "../../src/nft/serialize.ts";
import { parseConfig } from "../../src/config/load.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";

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

/** A services-only config, and its table as nft 1.0.6 listed it after `nflb apply` (captured in a namespace). */
const SERVICES_YAML = `version: 1
services:
  web:
    listen: 192.0.2.10:80
    scheduler: round-robin
    check: { method: none }
    backends:
      - { address: 198.51.100.2:80 }
      - { address: 198.51.100.3:80, weight: 2 }
`;
const SERVICES_LISTING = `table inet nflb {
	comment "managed by nflb: edit the config, not this table"
	map svc_dispatch4 {
		typeof ip daddr . meta l4proto . th dport : verdict
		elements = { 192.0.2.10 . tcp . 80 : goto svc_web }
	}

	set svc_vips4 {
		type ipv4_addr . inet_proto . inet_service
		elements = { 192.0.2.10 . tcp . 80 }
	}

	set svc_conns4 {
		type ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service
		size 1048576
		flags dynamic,timeout
		counter
		timeout 7d
	}

	set svc_bytes_to4 {
		type ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service
		size 1048576
		flags dynamic,timeout
		counter
		timeout 7d
	}

	set svc_bytes_from4 {
		type ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service
		size 1048576
		flags dynamic,timeout
		counter
		timeout 7d
	}

	map svc_slots4_tcp_17 {
		typeof ip daddr . tcp dport . numgen inc mod 1 : ip daddr . tcp dport
		elements = { 192.0.2.10 . 80 . 0 : 198.51.100.3 . 80,
			     192.0.2.10 . 80 . 1 : 198.51.100.2 . 80,
			     192.0.2.10 . 80 . 2 : 198.51.100.3 . 80 }
	}

	chain svc_bytes {
		type filter hook forward priority filter; policy accept;
		meta l4proto { tcp, udp } ct status dnat ct original ip daddr . meta l4proto . ct original proto-dst @svc_vips4 ct direction original update @svc_bytes_to4 { ct original ip daddr . meta l4proto . ct original proto-dst . ip daddr . th dport }
		meta l4proto { tcp, udp } ct status dnat ct original ip daddr . meta l4proto . ct original proto-dst @svc_vips4 ct direction reply update @svc_bytes_from4 { ct original ip daddr . meta l4proto . ct original proto-dst . ip saddr . th sport }
	}

	chain svc_web {
		dnat ip to ip daddr . tcp dport . numgen inc mod 3 map @svc_slots4_tcp_17
	}

	chain prerouting_dnat {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr . meta l4proto . th dport vmap @svc_dispatch4
	}

	chain output_dnat {
		type nat hook output priority -100; policy accept;
		ip daddr . meta l4proto . th dport vmap @svc_dispatch4
	}

	chain postrouting_nat {
		type nat hook postrouting priority srcnat; policy accept;
		meta l4proto { tcp, udp } ct status dnat ct original ip daddr . meta l4proto . ct original proto-dst @svc_vips4 update @svc_conns4 { ct original ip daddr . meta l4proto . ct original proto-dst . ip daddr . th dport }
	}
}
`;

test("a services table as the kernel lists it is unchanged for a second apply (declaration order, implied matches)", () => {
  const c = parseConfig(SERVICES_YAML);
  const want = desiredState(c, allHealthy(c), { interfaces: new Map() });
  const live = new Map<string, string | null>([
    ["inet nflb", SERVICES_LISTING],
    ["arp nflb", null],
  ]);
  assert.equal(liveTransaction(want.model, live), "");
});

test("canonical rules: matches nft adds itself for a header field meet the rule without them", () => {
  const same = (a: string, b: string) => assert.equal(canonicalRule(a), canonicalRule(b), `${a} | ${b}`);
  const differ = (a: string, b: string) => assert.notEqual(canonicalRule(a), canonicalRule(b), `${a} | ${b}`);
  same(
    "meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @d",
    "ip daddr . meta l4proto . th dport vmap @d",
  );
  same(
    "meta l4proto tcp dnat ip to ip daddr . tcp dport . numgen inc mod 3 map @m",
    "dnat ip to ip daddr . tcp dport . numgen inc mod 3 map @m",
  );
  same("meta nfproto ipv6 ip6 saddr @s accept", "ip6 saddr @s accept");
  // Without a field of that header nothing implies the match: it stays.
  differ("meta nfproto ipv4 meta mark 1 accept", "meta mark 1 accept");
  differ("meta l4proto tcp ip daddr @s accept", "ip daddr @s accept");
  differ("meta nfproto ipv6 ip daddr @s accept", "ip daddr @s accept");
  differ("meta l4proto { tcp, udp } th dport 53 accept", "th dport 53 accept");
});
