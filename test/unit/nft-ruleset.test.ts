import { diff } from "../../src/nft/diff.ts";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import { NftFake, NftFakeError, parseRuleset } from "../../src/nft/ruleset/fake.ts";
import { trace, traceAll, type Packet } from "../../src/nft/ruleset/trace.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";
import type { Facts } from "../../src/plan/types.ts";

const cfg = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, weight: 3 }
  isp2: { interface: wan2, gateway: 100.64.2.1, weight: 1, nat: snat }
balance: { method: random, from: [lan0] }
rules:
  - { name: tls, protocol: tcp, port: 443, via: [isp2, isp1] }
  - { name: peers, destination: [203.0.113.0/24], via: main }
services:
  web:
    listen: 198.51.100.10:80
    backends: [{ address: 192.0.2.11:80 }, { address: 192.0.2.12:8080 }]
`);
const facts: Facts = {
  interfaces: new Map([["wan2", { name: "wan2", up: true, addresses: [{ family: 4, text: "100.64.2.2" }] }]]),
};
const rendered = () => desiredState(cfg, allHealthy(cfg), facts).nft;
const lan = (more: Partial<Packet>): Packet => ({
  family: 4,
  saddr: "10.0.0.5",
  daddr: "1.1.1.1",
  l4proto: "tcp",
  sport: 40000,
  dport: 443,
  iif: "lan0",
  ...more,
});

describe("fake nft: reference checks, like the kernel", () => {
  test("nflb's whole table loads, and a rule naming an undefined set fails the transaction", () => {
    const f = new NftFake();
    f.apply(rendered());
    const before = f.ruleset;
    assert.throws(
      () => f.apply("add rule inet nflb decide ip saddr @no_such_set return\n"),
      (e: unknown) =>
        e instanceof NftFakeError && e.line === 1 && /set @no_such_set is not defined/.test(e.message),
    );
    assert.equal(f.ruleset, before, "nothing changed");
  });

  test("dangling jumps, missing elements and busy chains are errors; the whole script is undone", () => {
    const f = new NftFake();
    f.apply(rendered());
    for (const [script, why] of [
      ["add rule inet nflb decide goto nowhere", /chain nowhere is not defined/],
      ["add element inet nflb split { 99 : goto up_nobody_pin }", /chain up_nobody_pin/],
      ["delete element inet nflb split { 77 }", /77 is not in split/],
      ["flush chain inet nflb no_chain", /No such file/],
      ["delete chain inet nflb balance", /busy/],
      ["table inet nflb {\n\tchain x {\n\t\tjump prerouting\n\t}\n}", /base chain prerouting/],
    ] as const)
      assert.throws(() => f.apply(`flush map inet nflb split\n${script}\n`), why, script);
    assert.ok((f.ruleset.table("inet", "nflb")?.sets.get("split")?.elements.length ?? 0) > 0, "flush undone");
  });

  test("the kernel's listing (other spelling, elements over lines, counters) parses to the same walk", () => {
    const listed = `table inet nflb {
	counter up_isp1_conns {
		packets 3 bytes 180
	}

	map restore_mark {
		typeof ct mark : verdict
		elements = { 0x00000100 : goto up_isp1_mark,
			     0x0000ff00 : goto main_mark }
	}

	map sticky {
		typeof ip saddr . ip daddr : ct mark
		size 65536
		flags dynamic,timeout
		timeout 30m
		elements = { 10.0.0.5 . 1.1.1.1 expires 29m59s988ms : 0x00000100 }
	}

	chain up_isp1_mark {
		meta mark set meta mark & 0xffff01ff | 0x00000100
	}

	chain main_mark {
		meta mark set meta mark | 0x0000ff00
	}

	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		ct mark & 0x0000ff00 vmap @restore_mark
		ct mark 0x00000000 ct mark set ip saddr . ip daddr map @sticky
		counter name "up_isp1_conns"
	}
}
`;
    const r = parseRuleset(listed);
    assert.equal(trace(r, lan({ ctState: "established", ctMark: 0x100 })).mark, 0x100);
    assert.equal(trace(r, lan({ ctMark: 0xff00 })).mark, 0xff00);
    const fresh = trace(r, lan({}));
    assert.equal(fresh.ctMark, 0x100, "the remembered pair");
    assert.deepEqual(fresh.counters, ["up_isp1_conns"]);
  });
});

describe("packet tracer over the rendered table", () => {
  const r = parseRuleset(rendered());

  test("a new TCP packet from 10.0.0.5 to 1.1.1.1:443 gets mark 0x200 (rule tls, via isp2)", () => {
    const t = trace(r, lan({}), { hooks: ["prerouting"] });
    assert.equal(t.mark, 0x200);
    assert.equal(t.ctMark, 0x200);
    assert.ok(t.steps.some((s) => s.chain === "decide" && s.rule === "tcp dport 443 goto rule_0"));
  });

  test("via main marks 0xff00; a packet of a pinned connection gets its uplink back from the ct mark", () => {
    assert.equal(trace(r, lan({ daddr: "203.0.113.9", dport: 22 }), { hooks: ["prerouting"] }).mark, 0xff00);
    const t = trace(r, lan({ dport: 80, ctState: "established", ctMark: 0x100 }), { hooks: ["prerouting"] });
    assert.equal(t.mark, 0x100);
  });

  test("a pinned connection's packet leaves prerouting with its mark, without a map lookup or decide", () => {
    const t = trace(r, lan({ dport: 80, ctState: "established", ctMark: 0x200 }), { hooks: ["prerouting"] });
    assert.equal(t.mark, 0x200);
    assert.ok(
      t.steps.every((s) => s.chain === "prerouting"),
      "no jump out of prerouting",
    );
    // A retransmitted SYN (still `new`) of a pinned connection is not balanced again.
    const syn = trace(r, lan({ dport: 80, ctState: "new", ctMark: 0x100 }), { hooks: ["prerouting"] });
    assert.equal(syn.mark, 0x100);
    assert.equal(syn.ctMark, 0x100);
    assert.ok(!syn.steps.some((s) => s.chain === "decide"));
  });

  test("another firewall's packet-mark bits survive the restore; foreign conntrack bits are not copied", () => {
    const t = trace(r, lan({ dport: 80, ctState: "established", ctMark: 0x10200, mark: 0x3 }), {
      hooks: ["prerouting"],
    });
    assert.equal(t.mark, 0x203);
    const plain = trace(r, lan({ dport: 80, ctState: "established", ctMark: 0x10200 }), {
      hooks: ["prerouting"],
    });
    assert.equal(plain.mark, 0x200);
    const unpinned = trace(r, lan({ dport: 80, ctState: "established", ctMark: 0x10000, mark: 0x3 }), {
      hooks: ["prerouting"],
    });
    assert.equal(unpinned.mark, 0x3);
  });

  test("random balance: every outcome with its share, as the weights say", () => {
    const all = traceAll(r, lan({ dport: 80 }), { hooks: ["prerouting"] });
    const share = (m: number) => all.filter((t) => t.mark === m).reduce((s, t) => s + t.share, 0);
    assert.equal(share(0x100), 0.75);
    assert.equal(share(0x200), 0.25);
    assert.throws(() => trace(r, lan({ dport: 80 })), /numgen random mod 4/);
    assert.equal(trace(r, lan({ dport: 80 }), { numgen: 3, hooks: ["prerouting"] }).mark, 0x200);
  });

  test("connections arriving on an uplink stay on it; other interfaces are not balanced", () => {
    assert.equal(trace(r, lan({ iif: "wan2", daddr: "100.64.2.2" }), { hooks: ["prerouting"] }).mark, 0x200);
    assert.equal(trace(r, lan({ iif: "dmz0", dport: 80 }), { hooks: ["prerouting"] }).mark, 0);
  });

  test("a service VIP: not balanced, DNATed round-robin, SNAT by the uplink it leaves", () => {
    const all = traceAll(r, lan({ daddr: "198.51.100.10", dport: 80, oif: "wan2" }));
    assert.deepEqual(
      all.map((t) =>
        t.nat.map((n) =>
          "port" in n ? `${n.kind} ${n.addr}:${n.port}` : n.kind === "snat" ? `snat ${n.addr}` : n.kind,
        ),
      ),
      [
        ["dnat 192.0.2.11:80", "snat 100.64.2.2"],
        ["dnat 192.0.2.12:8080", "snat 100.64.2.2"],
      ],
    );
    assert.ok(all.every((t) => t.mark === 0 && t.counters.some((c) => /^svc_web_b\d$/.test(c))));
  });

  test("sticky rules: the kernel's update of the pair's map, remembered with `remember`", () => {
    const c = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1 }
  isp2: { interface: wan2, gateway: 100.64.2.1 }
rules:
  - { name: web, destination: [93.184.216.0/24], sticky: 30m }
`);
    const k = new NftFake();
    k.apply(desiredState(c, allHealthy(c), { interfaces: new Map() }).nft);
    const pkt = lan({ daddr: "93.184.216.34", iif: "eth7" });
    const first = trace(k.ruleset, pkt, { numgen: 1, remember: true, hooks: ["prerouting"] });
    assert.equal(first.mark, 0x200);
    assert.ok(first.steps.some((st) => st.effects.some((e) => e.startsWith("update @rule_0_sticky4"))));
    // The next connection of the pair finds the remembered uplink, whatever the numgen says.
    const again = trace(k.ruleset, pkt, { numgen: 0, hooks: ["prerouting"] });
    assert.equal(again.mark, 0x200);
    assert.equal(trace(k.ruleset, lan({ daddr: "93.184.216.35", iif: "eth7" }), { numgen: 0 }).mark, 0x100);
  });

  test("the router's own traffic: output then postrouting; a pinned connection keeps its uplink", () => {
    const out = trace(
      r,
      lan({ path: "output", iif: undefined, oif: "wan1", ctState: "established", ctMark: 0x200 }),
    );
    assert.equal(out.mark, 0x200);
    const fresh = trace(r, lan({ path: "output", iif: undefined, oif: "wan1" }));
    assert.equal(fresh.mark, 0, "unbound: left to policy routing");
    assert.equal(fresh.ctMark, 0x100, "pinned to the uplink it leaves by, at postrouting");
    assert.deepEqual(fresh.counters, ["up_isp1_conns"]);
  });

  test("an expression outside nflb's subset is an error naming it, never skipped", () => {
    assert.throws(
      () => parseRuleset("table inet x {\n\tchain c {\n\t\tmeta skuid 0 accept\n\t}\n}\n"),
      /skuid/,
    );
    assert.throws(
      () => parseRuleset("table inet x {\n\tchain c {\n\t\tlimit rate 1/second accept\n\t}\n}\n"),
      /limit/,
    );
  });
});

describe("every example config's table loads in the fake", () => {
  const dir = new URL("../../examples/", import.meta.url);
  for (const f of readdirSync(dir).filter((x) => x.endsWith(".yaml"))) {
    test(f, () => {
      const c = parseConfig(readFileSync(new URL(f, dir), "utf8"), f);
      const d = desiredState(c, allHealthy(c), { interfaces: new Map() });
      const k = new NftFake();
      k.apply(d.nft);
      // A health change (the first uplink down) as the daemon writes it: the diff loads on top.
      const h = allHealthy(c);
      const first = Object.keys(h.uplinks)[0];
      if (first) h.uplinks[first] = { up: false };
      k.apply(diff(d.model, desiredState(c, h, { interfaces: new Map() }).model).script);
      assert.ok(k.ruleset.table("inet", "nflb"));
    });
  }
});
