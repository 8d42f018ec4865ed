// Per-family health in the data plane: an uplink whose IPv6 is down (a broken v6 gateway) leaves
// only the IPv6 split; IPv4 keeps reaching it. Asserted through the fake kernel's tracer.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { desiredState, type HealthView } from "../../src/plan/desired.ts";
import { diff } from "../../src/nft/diff.ts";
import type { Facts } from "../../src/plan/types.ts";
import { kernelWith, tcp, trace, traceAll } from "./tracer-support.ts";

const cfg = (method = "random") =>
  parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: [100.64.1.1, "2001:db8:1::1"], weight: 3 }
  isp2: { interface: wan2, gateway: [100.64.2.1, "2001:db8:2::1"], weight: 1 }
balance: { method: ${method}, from: [lan0] }
rules:
  - { name: pinned, destination: [198.51.100.0/24, "2001:db8:51::/48"], via: [isp1, isp2] }
  - { name: web, destination: [203.0.113.0/24, "2001:db8:113::/48"], sticky: 30m }
`);

const facts: Facts = {
  interfaces: new Map(
    ([1, 2] as const).map((n) => [
      `wan${n}`,
      {
        name: `wan${n}`,
        up: true,
        addresses: [
          { family: 4 as const, text: `100.64.${n}.2` },
          { family: 6 as const, text: `2001:db8:${n}::2` },
        ],
      },
    ]),
  ),
};

const health = (isp1: HealthView["uplinks"][string]): HealthView => ({
  uplinks: { isp1, isp2: { up: true } },
  services: {},
});
const ALL_UP = health({ up: true });
const V6_DOWN = health({ up: true, downFamilies: [6] });
const V4_DOWN = health({ up: true, downFamilies: [4] });

const pre = { hooks: ["prerouting"] as const };
const shares = (nft: string, saddr: string, daddr: string) => {
  const k = kernelWith(nft);
  const out: Record<string, number> = {};
  for (const t of traceAll(k.ruleset, tcp(saddr, daddr, 443), { hooks: [...pre.hooks] }))
    out[`0x${t.mark.toString(16)}`] = (out[`0x${t.mark.toString(16)}`] ?? 0) + t.share;
  return out;
};

describe("per-family health: the split of each family", () => {
  test("all up: both families 3:1", () => {
    const nft = desiredState(cfg(), ALL_UP, facts).nft;
    assert.deepEqual(shares(nft, "10.0.0.5", "93.184.216.34"), { "0x100": 0.75, "0x200": 0.25 });
    assert.deepEqual(shares(nft, "2001:db8:99::5", "2001:db8:77::1"), { "0x100": 0.75, "0x200": 0.25 });
  });

  for (const method of ["random", "round-robin", "source-hash", "source-dest-hash"])
    test(`${method}: isp1's IPv6 down: new IPv6 connections skip isp1, IPv4 still reaches it`, () => {
      const nft = desiredState(cfg(method), V6_DOWN, facts).nft;
      if (!method.includes("hash")) {
        assert.deepEqual(shares(nft, "2001:db8:99::5", "2001:db8:77::1"), { "0x200": 1 });
        assert.deepEqual(shares(nft, "10.0.0.5", "93.184.216.34"), { "0x100": 0.75, "0x200": 0.25 });
        return;
      }
      // Hashes: one outcome per client; over 64 clients IPv6 never meets isp1, IPv4 mostly does.
      const sum = (src: (i: number) => string, dst: string) => {
        const out: Record<string, number> = {};
        for (let i = 1; i <= 64; i++)
          for (const [m, v] of Object.entries(shares(nft, src(i), dst))) out[m] = (out[m] ?? 0) + v;
        return out;
      };
      assert.deepEqual(
        sum((i) => `2001:db8:99::${i.toString(16)}`, "2001:db8:77::1"),
        { "0x200": 64 },
      );
      const v4 = sum((i) => `10.0.0.${i}`, "93.184.216.34");
      assert.ok((v4["0x100"] ?? 0) > 32 && (v4["0x200"] ?? 0) > 0, JSON.stringify(v4));
    });

  test("isp1's IPv4 down: the mirror image", () => {
    const nft = desiredState(cfg(), V4_DOWN, facts).nft;
    assert.deepEqual(shares(nft, "10.0.0.5", "93.184.216.34"), { "0x200": 1 });
    assert.deepEqual(shares(nft, "2001:db8:99::5", "2001:db8:77::1"), { "0x100": 0.75, "0x200": 0.25 });
  });

  test("a rule's via list falls back per family", () => {
    const k = kernelWith(desiredState(cfg(), V6_DOWN, facts).nft);
    assert.equal(trace(k.ruleset, tcp("10.0.0.5", "198.51.100.7", 443), pre).mark, 0x100);
    assert.equal(trace(k.ruleset, tcp("2001:db8:99::5", "2001:db8:51::7", 443), pre).mark, 0x200);
  });

  test("a sticky IPv6 pair remembered on isp1 chooses again while isp1's IPv6 is down; IPv4 pairs stay", () => {
    const k = kernelWith(desiredState(cfg(), ALL_UP, facts).nft);
    const v4 = tcp("10.0.0.5", "203.0.113.7", 443);
    const v6 = tcp("2001:db8:99::5", "2001:db8:113::7", 443);
    for (const p of [v4, v6])
      assert.equal(trace(k.ruleset, p, { ...pre, numgen: 0, remember: true }).mark, 0x100);
    // Apply the health change as the daemon does: the diff from the model in force.
    const before = desiredState(cfg(), ALL_UP, facts).model;
    k.apply(diff(before, desiredState(cfg(), V6_DOWN, facts).model).script);
    assert.equal(trace(k.ruleset, v4, { ...pre, numgen: 3 }).mark, 0x100, "IPv4 keeps its remembered uplink");
    assert.equal(trace(k.ruleset, v6, { ...pre, numgen: 0 }).mark, 0x200, "IPv6 chooses again");
  });

  test("the diff of a family going down: that family's split and live map only", () => {
    const before = desiredState(cfg("source-hash"), ALL_UP, facts).model;
    const script = diff(before, desiredState(cfg("source-hash"), V6_DOWN, facts).model).script;
    assert.match(script, /split6/);
    assert.match(script, /sticky_live6/);
    assert.doesNotMatch(script, /split4|sticky_live4|balance4|flush chain inet nflb balance\n/);
    // The rule whose first `via` lost IPv6: its one small chain, now a verdict per family.
    assert.match(script, /add rule inet nflb rule_0_via meta nfproto ipv4 goto up_isp1_pin\n/);
    assert.match(script, /add rule inet nflb rule_0_via goto up_isp2_pin\n/);
    assert.doesNotMatch(script, /^table inet nflb \{\n\tchain|delete (chain|map|set)/m);
  });

  test("every uplink's IPv6 called down: the IPv6 split is kept whole (fail-static per family)", () => {
    const h: HealthView = {
      uplinks: { isp1: { up: true, downFamilies: [6] }, isp2: { up: true, downFamilies: [6] } },
      services: {},
    };
    const nft = desiredState(cfg(), h, facts).nft;
    assert.deepEqual(shares(nft, "2001:db8:99::5", "2001:db8:77::1"), { "0x100": 0.75, "0x200": 0.25 });
  });

  test("an uplink without an IPv6 gateway gets no IPv6 connections", () => {
    const c = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1 }
  isp2: { interface: wan2, gateway: [100.64.2.1, "2001:db8:2::1"] }
balance: { from: [lan0] }
`);
    const nft = desiredState(
      c,
      { uplinks: { isp1: { up: true }, isp2: { up: true } }, services: {} },
      facts,
    ).nft;
    assert.deepEqual(shares(nft, "2001:db8:99::5", "2001:db8:77::1"), { "0x200": 1 });
    assert.deepEqual(shares(nft, "10.0.0.5", "93.184.216.34"), { "0x100": 0.5, "0x200": 0.5 });
  });
});
