import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import type { Ruleset } from "../../src/nft/model.ts";
import { chain, counter, kv, map, set, typedMap } from "../../src/nft/objects.ts";
import { serialize } from "../../src/nft/serialize.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";

test("the full script replaces every table atomically, and removes the ones no longer wanted", () => {
  const r: Ruleset = {
    tables: [
      {
        family: "inet",
        name: "nflb",
        comment: "managed by nflb",
        objects: [
          set("ifaces", "iifname", ['"wan1"', '"wan2"']),
          set("p", "ip daddr", ["192.0.2.0/24"], { flags: ["interval"], autoMerge: true }),
          map("st", "ip saddr . ip daddr : ct mark", [], {
            flags: ["dynamic", "timeout"],
            timeout: "30m",
            size: 65536,
            owner: "packet",
          }),
          typedMap("bytes", "ipv4_addr : counter", [kv("192.0.2.1", '"c1"')]),
          {
            ...set("owned", "numgen random mod 1", [], { flags: ["timeout"] }),
            elements: [{ key: "3", timeout: "900ms" }],
          },
          counter("c1"),
          chain("x", ["ip daddr @p accept"]),
          chain("pre", ["jump x"], {
            type: "filter",
            hook: "prerouting",
            priority: "mangle",
            policy: "accept",
          }),
        ],
      },
    ],
    absent: [{ family: "arp", name: "nflb" }],
  };
  assert.equal(
    serialize(r),
    [
      "add table inet nflb",
      "delete table inet nflb",
      "table inet nflb {",
      '\tcomment "managed by nflb"',
      "\tset ifaces {",
      "\t\ttypeof iifname",
      '\t\telements = { "wan1", "wan2" }',
      "\t}",
      "\tset p {",
      "\t\ttypeof ip daddr",
      "\t\tflags interval",
      "\t\tauto-merge",
      "\t\telements = { 192.0.2.0/24 }",
      "\t}",
      "\tmap st {",
      "\t\ttypeof ip saddr . ip daddr : ct mark",
      "\t\tflags dynamic,timeout",
      "\t\ttimeout 30m",
      "\t\tsize 65536",
      "\t}",
      "\tmap bytes {",
      "\t\ttype ipv4_addr : counter",
      '\t\telements = { 192.0.2.1 : "c1" }',
      "\t}",
      "\tset owned {",
      "\t\ttypeof numgen random mod 1",
      "\t\tflags timeout",
      "\t\telements = { 3 timeout 900ms }",
      "\t}",
      "\tcounter c1 {",
      "\t}",
      "\tchain x {",
      "\t\tip daddr @p accept",
      "\t}",
      "\tchain pre {",
      "\t\ttype filter hook prerouting priority mangle; policy accept;",
      "\t\tjump x",
      "\t}",
      "}",
      "add table arp nflb",
      "delete table arp nflb",
      "",
    ].join("\n"),
  );
});

test("15,000 endpoints (300 round-robin services × 50 backends) serialize without exhausting the stack", () => {
  const lines = ["version: 1", "services:"];
  for (let s = 0; s < 300; s++) {
    lines.push(`  s${s}:`, `    listen: 203.0.113.10:${1000 + s}`, "    backends:");
    for (let b = 0; b < 50; b++) {
      const n = s * 50 + b;
      lines.push(`      - { address: 198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}:80 }`);
    }
  }
  const c = parseConfig(lines.join("\n") + "\n");
  const script = desiredState(c, allHealthy(c), { interfaces: new Map() }).nft;
  assert.match(script, /^add table inet nflb\n/);
  // Backends are elements: a chain per service, none per backend, no named counter.
  assert.equal(script.match(/^\tchain svc_s\d+ \{$/gm)?.length, 300);
  assert.equal(script.match(/^\tchain svc_s\d+_b\d+ \{$/gm), null);
  assert.equal(script.match(/^\tcounter /gm), null);
  assert.equal(script.match(/ : 198\.\d+\.\d+\.\d+ \. 80\b/g)?.length, 15_000);
});
