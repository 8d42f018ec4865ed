// plan --diff's comparison: the kernel's listing against what apply would install, object by object.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import { compareRulesets } from "../../src/nft/ruleset/compare.ts";
import { parseRuleset } from "../../src/nft/ruleset/fake.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";

const cfg = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, weight: 2 }
  isp2: { interface: wan2, gateway: 100.64.2.1 }
rules:
  - { name: docs, destination: [198.51.100.0/24], via: [isp2, isp1] }
  - { name: sticky, source: [198.18.0.0/24], sticky: 10m }
`);
const want = desiredState(cfg, allHealthy(cfg), { interfaces: new Map() }).nft;

test("the same ruleset: no difference", () => {
  assert.deepEqual(compareRulesets(parseRuleset(want), parseRuleset(want)), []);
});

test("a changed element, an extra prefix and an extra rule are named; foreign elements are not", () => {
  const live = parseRuleset(
    want +
      "delete element inet nflb split4 { 2 }\n" +
      "add element inet nflb split4 { 2 : goto up_isp1_pin }\n" +
      "add element inet nflb rule_0_dst4 { 203.0.113.0/24 }\n" +
      "add rule inet nflb decide ip daddr 192.0.2.9 accept\n" +
      "add element inet nflb rule_1_sticky4 { 198.18.0.5 . 192.0.2.1 : 0x00000100 }\n",
  );
  const changes = compareRulesets(live, parseRuleset(want), {
    foreignElements: (_t, set) => set.startsWith("rule_1_sticky"),
  }).map((c) => `${c.op} ${c.object}: ${c.detail}`);
  assert.deepEqual(changes, [
    "~ map inet nflb split4: element 2 : goto up_isp1_pin, wanted : goto up_isp2_pin",
    "- set inet nflb rule_0_dst4: element 203.0.113.0/24",
    "~ chain inet nflb decide: 7 rules, wanted 6",
  ]);
});

test("a missing table, set or chain is an addition; one nflb does not want, a removal", () => {
  const empty = parseRuleset("");
  assert.deepEqual(compareRulesets(empty, parseRuleset(want)), [
    { op: "+", object: "table inet nflb", detail: "missing" },
  ]);
  const extra = parseRuleset(want + "add chain inet nflb stray\n");
  assert.deepEqual(compareRulesets(extra, parseRuleset(want)), [
    { op: "-", object: "chain inet nflb stray", detail: "not wanted" },
  ]);
});
