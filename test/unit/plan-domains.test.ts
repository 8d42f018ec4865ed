// Domain rules in the data plane: per rule and family a DNS set (daemon-written) and a keep set
// (packet-written), matched in `decide` like destination prefixes; diffs never touch their elements.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";
import { diff } from "../../src/nft/diff.ts";
import { findObject, withElements } from "../../src/nft/model.ts";
import { domainSets } from "../../src/plan/nft-domains.ts";
import type { Facts } from "../../src/plan/types.ts";

const facts: Facts = { interfaces: new Map() } as unknown as Facts;
const config = (rules: string) =>
  parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1 }
  isp2: { interface: wan2, gateway: 100.64.2.1 }
rules:
${rules}
dns: { listen: [192.0.2.1:53], upstream: [198.51.100.53], keep: 10s, max_entries_per_rule: 1000 }
`);

const planOf = (rules: string) => {
  const c = config(rules);
  return desiredState(c, allHealthy(c), facts);
};
const chainRules = (d: ReturnType<typeof planOf>, name: string) =>
  findObject(d.model.tables[0]!, "chain", name)?.rules ?? [];

test("a domain-only rule matches through its two sets per family, and nothing else", () => {
  const d = planOf("  - { name: video, domains: [example.com], via: [isp2] }");
  const decide = chainRules(d, "decide");
  assert.deepEqual(
    decide.filter((r) => r.includes("rule_0") || r.includes("dom_")),
    [
      "ip daddr @dom_video_4 goto dom_video",
      "ip daddr @dom_video_keep4 goto dom_video",
      "ip6 daddr @dom_video_6 goto dom_video",
      "ip6 daddr @dom_video_keep6 goto dom_video",
    ],
  );
  assert.deepEqual(chainRules(d, "dom_video"), [
    "meta nfproto ipv4 update @dom_video_keep4 { ip daddr }",
    "meta nfproto ipv6 update @dom_video_keep6 { ip6 daddr }",
    "goto rule_0",
  ]);
  const t = d.model.tables[0]!;
  const dns4 = findObject(t, "set", "dom_video_4");
  assert.equal(dns4?.type, "ipv4_addr");
  assert.equal(dns4?.owner, "external");
  assert.deepEqual(dns4?.flags, ["timeout"]);
  assert.equal(dns4?.size, 2000);
  const keep4 = findObject(t, "set", "dom_video_keep4");
  assert.equal(keep4?.owner, "packet");
  assert.equal(keep4?.timeout, "10s");
  assert.deepEqual(keep4?.flags, ["dynamic", "timeout"]);
  // The refresh runs before restore_mark sends pinned packets on.
  const pre = chainRules(d, "prerouting");
  assert.equal(pre[0], "ct state established ct direction original jump domains_keep");
  assert.deepEqual(
    domainSets(d.uplinks).map((s) => s.set),
    ["dom_video_4", "dom_video_6"],
  );
});

test("domains with destination, source and port: either destination, with the other matches", () => {
  const d = planOf(
    "  - { name: bank, domains: [bank.example], destination: [203.0.113.0/24], source: [10.0.0.0/8], protocol: tcp, port: 443, via: [isp1] }",
  );
  const decide = chainRules(d, "decide").filter((r) => r.includes("rule_0") || r.includes("dom_"));
  assert.deepEqual(decide, [
    "ip daddr @rule_0_dst4 ip saddr @rule_0_src4 tcp dport 443 goto rule_0",
    "ip daddr @dom_bank_4 ip saddr @rule_0_src4 tcp dport 443 goto dom_bank",
    "ip daddr @dom_bank_keep4 ip saddr @rule_0_src4 tcp dport 443 goto dom_bank",
  ]);
});

test("no domain rule: no domain objects, no refresh rule", () => {
  const d = planOf("  - { name: smtp, protocol: tcp, port: 25, via: [isp2] }");
  assert.ok(!chainRules(d, "prerouting").some((r) => r.includes("domains_keep")));
  assert.equal(findObject(d.model.tables[0]!, "chain", "domains_keep"), undefined);
});

test("a diff leaves the domain sets' elements alone; reordering rules keeps each rule's sets", () => {
  const a = planOf(
    "  - { name: video, domains: [example.com], via: [isp2] }\n  - { name: smtp, protocol: tcp, port: 25, via: [isp2] }",
  );
  const held = withElements(a.model, "inet nflb", "dom_video_4", [{ key: "203.0.113.7", timeout: "30s" }]);
  const b = planOf(
    "  - { name: smtp, protocol: tcp, port: 25, via: [isp2] }\n  - { name: video, domains: [example.com], via: [isp2] }",
  );
  const d = diff(held, b.model);
  assert.deepEqual(d.replaced, []);
  assert.ok(!/element .*dom_video|(flush|delete) set .*dom_video/.test(d.script), d.script);
  assert.match(d.script, /add rule inet nflb dom_video goto rule_1/);
});
