import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { explain, type ExplainInputs } from "../../src/explain/explain.ts";
import { formatExplanation } from "../../src/explain/format.ts";
import { parseQuery, type Query } from "../../src/explain/packet.ts";
import type { UplinkAnswer } from "../../src/explain/uplinks.ts";
import { addrBytes, concatKey, nftJhash } from "../../src/nft/ruleset/jhash.ts";
import { parseAddr, type Addr } from "../../src/net/ip.ts";
import { allHealthy, desiredState, type HealthView } from "../../src/plan/desired.ts";
import type { Health } from "../../src/plan/types.ts";
import { allUp, planUplinks } from "../../src/plan/uplinks.ts";
import { interfaceFacts } from "../../testkit/dataplane-fakes.ts";

const A = (s: string): Addr => {
  const a = parseAddr(s);
  assert.ok(a, s);
  return a;
};

const base = `version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, weight: 3 }
  isp2: { interface: wan2, gateway: 100.64.2.1, weight: 1, nat: snat }
  isp3: { interface: wan3, gateway: 100.64.3.1, weight: 1, nat: none }
`;

const facts = interfaceFacts({
  lan0: ["198.18.0.1"],
  wan1: ["100.64.1.2"],
  wan2: ["100.64.2.2"],
  wan3: ["100.64.3.2"],
});

function q(src: string, dst: string, proto?: string, port?: string, more: Partial<Query> = {}): Query {
  const r = parseQuery({ src, dst, proto, port });
  assert.ok(!("error" in r), JSON.stringify(r));
  return { ...r, ...more };
}

function ask(c: Config, query: Query, health: Health = allUp(c)): UplinkAnswer {
  const e = explain(c, query, { health: { uplinks: health, services: {} }, healthSource: "test", facts });
  assert.ok(e.uplinks, JSON.stringify(e));
  return e.uplinks;
}

const uplinkOf = (a: UplinkAnswer) => (a.outcome.kind === "uplink" ? a.outcome.uplink : a.outcome.kind);

describe("explain: rules, first match wins", () => {
  const c = parseConfig(`${base}balance: { from: [lan0], method: random }
rules:
  - { name: bank, destination: [66.218.64.0/19, "2001:db8:66::/48"], via: [isp1, isp2] }
  - { name: smtp, protocol: tcp, port: 25, via: [isp2] }
  - { name: peers, destination: [203.0.113.0/24], via: main }
  - { name: games, port: 27000-27100, via: [isp3] }
  - { name: sticky, source: [198.18.0.0/28], sticky: 30m }
`);

  test("a pinned destination takes the first uplink of its via list that is up", () => {
    const a = ask(c, q("198.18.0.20", "66.218.70.1", "tcp", "443"));
    assert.equal(a.rule, "bank");
    assert.equal(uplinkOf(a), "isp1");
    const down = ask(c, q("198.18.0.20", "66.218.70.1", "tcp", "443"), {
      isp1: { up: false },
      isp2: { up: true },
      isp3: { up: true },
    });
    assert.equal(uplinkOf(down), "isp2");
    assert.match(down.trace.join("\n"), /rule_0_via: `goto up_isp2_pin`/);
  });

  test("a via list with nothing up falls back to the balance", () => {
    const a = ask(c, q("198.18.0.20", "66.218.70.1"), {
      isp1: { up: false },
      isp2: { up: false },
      isp3: { up: true },
    });
    assert.equal(a.rule, "bank");
    assert.equal(uplinkOf(a), "isp3");
    assert.match(a.trace.join("\n"), /rule_0_via: `goto balance`/);
  });

  test("protocol and port rules need PROTO PORT, and match only them", () => {
    assert.equal(ask(c, q("198.18.0.20", "93.184.216.34", "tcp", "25")).rule, "smtp");
    assert.equal(uplinkOf(ask(c, q("198.18.0.20", "93.184.216.34", "tcp", "25"))), "isp2");
    assert.notEqual(ask(c, q("198.18.0.20", "93.184.216.34", "udp", "25")).rule, "smtp");
    const none = ask(c, q("198.18.0.20", "93.184.216.34"));
    assert.match(none.trace.join("\n"), /`tcp dport 25 goto rule_1` needs meta l4proto/);
    assert.equal(ask(c, q("198.18.0.20", "93.184.216.34", "udp", "27050")).rule, "games");
    assert.equal(ask(c, q("198.18.0.20", "93.184.216.34", "tcp", "27101")).rule, null);
    assert.notEqual(ask(c, q("198.18.0.20", "93.184.216.34", "icmp")).rule, "games");
  });

  test("via main leaves it to the main table", () => {
    const a = ask(c, q("198.18.0.20", "203.0.113.9", "tcp", "22"));
    assert.equal(a.rule, "peers");
    assert.equal(a.outcome.kind, "main");
  });

  test("a rule with only IPv4 destinations cannot match IPv6, and v6 prefixes match v6", () => {
    assert.equal(ask(c, q("2001:db8:1::5", "2001:db8:66::1")).rule, "bank");
    assert.notEqual(ask(c, q("2001:db8:1::5", "2001:db8:203::1", "tcp", "22")).rule, "peers");
  });

  test("sticky: the kernel's remembered uplink (in the live table) wins while it is up", () => {
    const plan = planUplinks(c, allUp(c), facts);
    const rule = plan?.rules.find((r) => r.name === "sticky");
    const isp3 = plan?.uplinks.find((u) => u.name === "isp3");
    assert.ok(rule && isp3);
    const query = q("198.18.0.5", "93.184.216.34", "tcp", "443");
    // The kernel's table: what the config renders, plus the pair the sticky map remembers.
    const live = (h: Health) =>
      desiredState(c, { uplinks: h, services: {} }, facts).nft +
      `add element inet nflb rule_${rule.id}_sticky4 { 198.18.0.5 . 93.184.216.34 : 0x${isp3.mark.toString(16)} }\n`;
    const run = (h: Health) =>
      explain(c, query, { health: { uplinks: h, services: {} }, healthSource: "t", facts, ruleset: live(h) })
        .uplinks;
    const kept = run(allUp(c));
    assert.equal(kept?.rule, "sticky");
    assert.equal(kept && uplinkOf(kept), "isp3");
    assert.match(kept?.trace.join("\n") ?? "", /kernel remembers an uplink/);
    const dead = run({ isp1: { up: true }, isp2: { up: true }, isp3: { up: false } });
    assert.equal(dead?.outcome.kind, "spread", "the remembered uplink is down: the pair is balanced again");
    assert.match(ask(c, query).trace.join("\n"), /could not be read/);
  });
});

describe("explain: the balance", () => {
  const cfg = (method: string) => parseConfig(`${base}balance: { method: ${method} }\n`);

  test("random: each uplink's probability is its share of the split", () => {
    const a = ask(cfg("random"), q("198.18.0.20", "93.184.216.34"));
    assert.deepEqual(a.outcome, {
      kind: "spread",
      method: "random",
      shares: [
        { name: "isp1", share: 0.6 },
        { name: "isp2", share: 0.2 },
        { name: "isp3", share: 0.2 },
      ],
    });
  });

  test("round-robin: the rotation the kernel walks", () => {
    const c = cfg("round-robin");
    const a = ask(c, q("198.18.0.20", "93.184.216.34"));
    assert.equal(a.outcome.kind, "spread");
    assert.deepEqual(
      a.outcome.kind === "spread" && a.outcome.rotation,
      planUplinks(c, allUp(c), facts)?.split4?.slots,
    );
  });

  for (const method of ["source-hash", "source-dest-hash"]) {
    test(`${method}: the exact slot, with the modulus and seed the nft script uses`, () => {
      const c = cfg(method);
      const nft = desiredState(c, allHealthy(c), facts).nft;
      const m = /jhash ip saddr(?: \. ip daddr)? mod (\d+) seed (0x[0-9a-f]+) vmap @split/.exec(nft);
      assert.ok(m, nft);
      const [mod, seed] = [Number(m[1]), Number(m[2])];
      const slots = planUplinks(c, allUp(c), facts)?.split4?.slots ?? [];
      const seen = new Set<string>();
      for (let i = 10; i < 60; i++) {
        const src = `198.18.0.${i}`;
        const dst = "93.184.216.34";
        const key =
          method === "source-hash" ? addrBytes(A(src)) : concatKey(addrBytes(A(src)), addrBytes(A(dst)));
        const a = ask(c, q(src, dst));
        assert.equal(uplinkOf(a), slots[nftJhash(key, mod, seed)]);
        seen.add(uplinkOf(a));
      }
      assert.equal(seen.size, 3, "fifty sources reach every uplink");
    });
  }

  test("no uplink up: new connections are dropped", () => {
    const c = cfg("random");
    const a = ask(c, q("198.18.0.20", "93.184.216.34"), {
      isp1: { up: false },
      isp2: { up: false },
      isp3: { up: false },
    });
    assert.equal(a.outcome.kind, "drop");
  });

  test("a down uplink leaves the split; weights follow the daemon's effective weights", () => {
    const c = cfg("random");
    const a = ask(c, q("198.18.0.20", "93.184.216.34"), {
      isp1: { up: false },
      isp2: { up: true, weight: 1 },
      isp3: { up: true, weight: 3 },
    });
    assert.deepEqual(a.outcome.kind === "spread" && a.outcome.shares, [
      { name: "isp2", share: 0.25 },
      { name: "isp3", share: 0.75 },
    ]);
  });
});

describe("explain: what is not balanced", () => {
  const c = parseConfig(`${base}balance: { from: [lan0], sources: [198.18.0.0/24], primary: [isp2, isp1] }
rules:
  - { name: all, via: [isp3] }
`);

  test("a connection arriving on an uplink stays on it", () => {
    const a = ask(c, q("192.0.2.7", "100.64.1.2", "tcp", "22", { iif: "wan1" }));
    assert.equal(uplinkOf(a), "isp1");
  });

  test("an interface outside balance.from, or a source outside balance.sources, follows the primary", () => {
    assert.equal(
      uplinkOf(ask(c, q("198.18.0.20", "93.184.216.34", undefined, undefined, { iif: "dmz0" }))),
      "isp2",
    );
    assert.equal(uplinkOf(ask(c, q("10.1.1.1", "93.184.216.34"))), "isp2");
    assert.equal(
      uplinkOf(ask(c, q("198.18.0.20", "93.184.216.34"))),
      "isp3",
      "the LAN's own goes by the rule",
    );
  });

  test("the router's own traffic: bound to an uplink's address, or the primary; rules do not apply", () => {
    const bound = ask(c, q("100.64.1.2", "93.184.216.34", "tcp", "25"));
    assert.equal(uplinkOf(bound), "isp1");
    assert.match(bound.trace.join("\n"), /ip rule from 100\.64\.1\.2 lookup 201/);
    assert.equal(uplinkOf(ask(c, q("198.18.0.1", "93.184.216.34"))), "isp2");
    assert.equal(
      uplinkOf(
        ask(c, q("198.18.0.1", "93.184.216.34"), {
          isp1: { up: true },
          isp2: { up: false },
          isp3: { up: true },
        }),
      ),
      "isp1",
    );
  });

  test("balance.local: balance spreads the router's own traffic over a multipath route", () => {
    const b = parseConfig(`${base}balance: { local: balance }\n`);
    const a = ask(b, q("0.0.0.0", "93.184.216.34", undefined, undefined, { local: true }));
    assert.equal(a.outcome.kind === "spread" && a.outcome.method, "multipath");
  });

  test("traffic for the router itself is delivered locally", () => {
    assert.equal(ask(c, q("198.18.0.20", "198.18.0.1")).outcome.kind, "local");
    assert.equal(ask(c, q("198.18.0.20", "224.0.0.251")).outcome.kind, "local");
  });
});

describe("explain: the whole answer", () => {
  const c = parseConfig(`${base}balance: { method: source-hash }\n`);
  const inputs = (health: HealthView = allHealthy(c)): ExplainInputs => ({
    health,
    healthSource: "assumed: test",
    facts,
  });

  test("names the uplink, how it leaves and its NAT", () => {
    const e = explain(c, q("198.18.0.20", "93.184.216.34", "tcp", "443"), inputs());
    assert.equal(e.kind, "uplinks");
    const text = formatExplanation(e);
    assert.match(text, /^198\.18\.0\.20 → 93\.184\.216\.34 tcp\/443$/m);
    assert.match(text, /^health: assumed: test$/m);
    assert.match(
      text,
      /^→ uplink isp\d \(leaves by wan\d via 100\.64\.\d\.1, (masqueraded to|SNAT to|no NAT)/m,
    );
    const d = e.uplinkDetails[0];
    assert.ok(d);
    if (d.nat === "none") assert.equal(d.source, "198.18.0.20");
    else assert.equal(d.source, `100.64.${d.name.slice(3)}.2`);
  });

  test("JSON carries the rule and the outcome for scripts", () => {
    const e = JSON.parse(JSON.stringify(explain(c, q("198.18.0.20", "93.184.216.34"), inputs()))) as {
      rule: null;
      uplinks: { outcome: { kind: string; uplink: string } };
    };
    assert.equal(e.rule, null);
    assert.equal(e.uplinks.outcome.kind, "uplink");
    assert.match(e.uplinks.outcome.uplink, /^isp[123]$/);
  });
});
