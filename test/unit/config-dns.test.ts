// rules[].domains and the dns section: validated, bounded, with messages that say how to write them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig, parseConfigSource } from "../../src/config/load.ts";
import { formatPath } from "../../src/config/issues.ts";
import { issuesOf as configIssues } from "../../testkit/config-text.ts";

const base = `version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, probe: { targets: [198.18.100.1] } }
  isp2: { interface: wan2, gateway: 100.64.2.1, probe: { targets: [198.18.100.2] } }
`;

const issuesOf = (text: string) => configIssues(text).map((i) => `${formatPath(i.path)}: ${i.message}`);

test("domains and a dns section are read with defaults", () => {
  const c = parseConfig(`${base}rules:
  - { name: video, domains: [example.com, "*.example.net"], via: [isp2] }
  - { name: both, domains: [bank.example], destination: [203.0.113.0/24], protocol: tcp, via: [isp1] }
dns: { listen: [192.0.2.1:53], upstream: [198.51.100.53, "[2001:db8::53]:5353"] }
`);
  assert.deepEqual(c.rules[0]?.domains, ["example.com", "*.example.net"]);
  assert.equal(c.dns?.min_ttl, 30_000);
  assert.equal(c.dns?.keep, 300_000);
  assert.equal(c.dns?.max_entries_per_rule, 65_536);
  assert.deepEqual(c.dns?.upstream, ["198.51.100.53", "[2001:db8::53]:5353"]);
});

test("a domain must be lower case, ASCII (punycode), without a trailing dot or inner *", () => {
  const rule = (d: string) => `${base}rules:\n  - { name: r, domains: ["${d}"], via: [isp1] }\n`;
  assert.match(issuesOf(rule("Example.COM")).join(), /lower case: example\.com/);
  assert.match(issuesOf(rule("bücher.example")).join(), /punycode: xn--bcher-kva\.example/);
  assert.match(issuesOf(rule("example.com.")).join(), /trailing dot: example\.com/);
  assert.match(issuesOf(rule("a.*.example")).join(), /only as the first label/);
  assert.match(issuesOf(rule("-bad-.example")).join(), /not a valid domain name/);
  assert.match(issuesOf(rule(`${"a".repeat(64)}.example`)).join(), /1 to 63 long/);
});

test("domain lists are bounded, and max_ttl is at least min_ttl", () => {
  const many = Array.from({ length: 1001 }, (_, i) => `d${i}.example`).join(", ");
  assert.match(
    issuesOf(`${base}rules:\n  - { name: r, domains: [${many}], via: [isp1] }\n`).join(),
    /rules\[0\]\.domains/,
  );
  assert.match(
    issuesOf(
      `${base}dns: { listen: [192.0.2.1:53], upstream: [198.51.100.53], min_ttl: 1h, max_ttl: 1m }\n`,
    ).join(),
    /dns\.max_ttl: max_ttl must be at least min_ttl/,
  );
  assert.match(
    issuesOf(`${base}dns: { listen: [192.0.2.1], upstream: [198.51.100.53] }\n`).join(),
    /has no port/,
  );
  assert.match(
    issuesOf(`${base}dns: { listen: [192.0.2.1:53], upstream: [resolver.example] }\n`).join(),
    /resolver address/,
  );
});

test("a domain rule without a dns section is a warning", () => {
  const ws = parseConfigSource(
    `${base}rules:\n  - { name: r, domains: [example.com], via: [isp1] }\n`,
  ).warnings;
  const w = ws.find((x) => formatPath(x.path) === "rules[0].domains");
  assert.ok(w, JSON.stringify(ws));
  assert.match(w.message, /no dns section/);
});
