// `nflb explain` for a destination a domain rule holds: the rule, the name it was answered for
// and the time left (from the daemon), over the kernel's table with the address in the rule's set.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";
import { explain } from "../../src/explain/explain.ts";
import { parseQuery } from "../../src/explain/packet.ts";
import { formatStatus } from "../../src/daemon/status-table.ts";
import type { StatusJson } from "../../src/daemon/status.ts";

const c = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1 }
  isp2: { interface: wan2, gateway: 100.64.2.1 }
rules:
  - { name: netflix, domains: [example.com], via: [isp2] }
dns: { listen: [192.0.2.1:53], upstream: [198.51.100.53] }
`);
const facts = { interfaces: new Map() };
// The kernel's listing: the rendered table with one element in each set.
const ruleset = desiredState(c, allHealthy(c), facts)
  .nft.replace(
    /(set dom_netflix_4 \{\n[^}]*?)(\n\t\})/,
    "$1\n\t\telements = { 203.0.113.7 timeout 1m expires 41s }$2",
  )
  .replace(/(set dom_netflix_keep4 \{\n[^}]*?)(\n\t\})/, "$1\n\t\telements = { 203.0.113.8 expires 2m }$2");

const ask = (dst: string, domains?: { rule: string; domain: string; left_s: number }[]) => {
  const q = parseQuery({ src: "198.18.0.2", dst, proto: "tcp", port: "443" });
  assert.ok(!("error" in q));
  return explain(c, q, {
    health: allHealthy(c),
    healthSource: "test",
    facts,
    ruleset,
    ...(domains ? { domains } : {}),
  });
};

test("a destination in a rule's DNS set: the rule, the name and the time left", () => {
  const e = ask("203.0.113.7", [{ rule: "netflix", domain: "example.com", left_s: 41 }]);
  assert.equal(e.rule, "netflix");
  assert.deepEqual(e.uplinks?.outcome, { kind: "uplink", uplink: "isp2" });
  assert.ok(
    e.uplinks?.trace.includes("203.0.113.7 matches rule netflix via example.com, 41 s left"),
    e.uplinks?.trace.join("\n"),
  );
  const unknown = ask("203.0.113.7");
  assert.ok(unknown.uplinks?.trace.some((l) => /through its DNS set \(ask the running daemon/.test(l)));
});

test("a destination kept by open connections, and one no rule holds", () => {
  const kept = ask("203.0.113.8", []);
  assert.equal(kept.rule, "netflix");
  assert.ok(
    kept.uplinks?.trace.some((l) =>
      l.startsWith("203.0.113.8 matches rule netflix: connections to it are open"),
    ),
  );
  const other = ask("203.0.113.9", []);
  assert.equal(other.rule, null);
});

test("status shows each domain rule's set sizes", () => {
  const s = {
    uplinks: [],
    services: [],
    cluster: null,
    applied_at: null,
    config_version: "abc",
    config_file: "/etc/nflb/nflb.yaml",
    started_at: "",
    last_reload_error: null,
    keeping_last_data_plane: false,
    dns: {
      listen: ["192.0.2.1:53"],
      upstream: ["198.51.100.53"],
      running: true,
      error: null,
      pending: 0,
      entries: 3,
      rules: [{ rule: "netflix", domains: ["example.com"], entries4: 2, entries6: 1 }],
    },
  } satisfies StatusJson;
  const text = formatStatus(s, false);
  assert.match(text, /dns forwarder 192\.0\.2\.1:53 → 198\.51\.100\.53\n/);
  assert.match(text, /netflix\s+2\s+1\s+example\.com/);
});
