// Issue 13, "what it must show" 4, and issue 14's configs that passed `check` and broke the host:
// configs admins plausibly write, each refused with a message that names the YAML path and line
// and says how to fix it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, formatPath } from "../../src/config/issues.ts";
import { MAX_CONFIG_BYTES, parseConfig } from "../../src/config/load.ts";
import { stringify } from "yaml";
import { issuesOf } from "../../testkit/config-text.ts";

const base = `version: 1
uplinks:
  isp1:
    interface: wan1
    gateway: 100.64.1.1
    weight: 3
    probe: { targets: [198.18.100.1] }
  isp2:
    interface: wan2
    gateway: 100.64.2.1
    weight: 1
    probe: { targets: [198.18.100.2] }
`;
// Lines of `base`: 1 version, 2 uplinks, 3 isp1, 6 isp1 weight, 8 isp2, 9 wan2, 11 isp2 weight, 12 isp2 probe.

const service = (backends: string, listen = "203.0.113.10:80") => `version: 1
services:
  web:
    listen: ${listen}
    backends:
${backends}`;

const cluster = (extra: string) => `version: 1
cluster:
  name: web
  vip: 192.0.2.2
  interface: eth0
${extra}`;

const uplinks = (n: number) =>
  "version: 1\nuplinks:\n" +
  Array.from(
    { length: n },
    (_, i) => `  u${i}: { interface: eth${i}, probe: { targets: [198.18.0.1] } }\n`,
  ).join("");

interface Case {
  what: string;
  yaml: string;
  path: string;
  line: number;
  /** What the message must say: the fix, in the admin's terms. */
  hint: RegExp;
}

const cases: Case[] = [
  {
    what: "a duration without a unit",
    yaml: base.replace("[198.18.100.2] }", "[198.18.100.2], interval: 200 }"),
    path: "uplinks.isp2.probe.interval",
    line: 12,
    hint: /add a unit: 200ms/,
  },
  {
    what: "a duration without a unit, in quotes",
    yaml: cluster('  lease: "2"\n'),
    path: "cluster.lease",
    line: 6,
    hint: /add a unit: 2s/,
  },
  {
    what: "sticky without a unit",
    yaml: base + "rules:\n  - name: web\n    source: [10.0.0.0/24]\n    sticky: 30\n",
    path: "rules[0].sticky",
    line: 16,
    hint: /add a unit: 30s/,
  },
  {
    what: "a duration spelled out",
    yaml: base.replace("[198.18.100.2] }", "[198.18.100.2], interval: 2 seconds }"),
    path: "uplinks.isp2.probe.interval",
    line: 12,
    hint: /write 2s/,
  },
  {
    what: "a probe interval that overflows Node's timers (600h)",
    yaml: base.replace("[198.18.100.2] }", "[198.18.100.2], interval: 600h }"),
    path: "uplinks.isp2.probe.interval",
    line: 12,
    hint: /out of range: use 10ms to 60s/,
  },
  {
    what: "a probe interval too short to be a probe (1ms)",
    yaml: base.replace("[198.18.100.2] }", "[198.18.100.2], interval: 1ms }"),
    path: "uplinks.isp2.probe.interval",
    line: 12,
    hint: /use 10ms to 60s/,
  },
  {
    what: "a zero lease",
    yaml: cluster("  lease: 0ms\n"),
    path: "cluster.lease",
    line: 6,
    hint: /use 500ms to 60s/,
  },
  {
    what: "a sticky time of a year",
    yaml: base + "rules:\n  - name: web\n    source: [10.0.0.0/24]\n    sticky: 9000h\n",
    path: "rules[0].sticky",
    line: 16,
    hint: /use 1s to 7d/,
  },
  {
    what: "table_base 253 (the default table, then main)",
    yaml: base + "table_base: 253\n",
    path: "table_base",
    line: 13,
    hint: /253 \(default\), 254 \(main\).*set table_base: 200/,
  },
  {
    what: "54 uplinks at the default table_base (uplink tables run into main)",
    yaml: uplinks(54),
    path: "table_base",
    line: 1,
    hint: /254 \(main\).*set table_base: 1000/,
  },
  {
    what: "more uplinks than nflb's ranges hold",
    yaml: uplinks(101) + "mark_mask: 0xffff0000\ntable_base: 1000\n",
    path: "uplinks",
    line: 2,
    hint: /at most 100 uplinks \(has 101\)/,
  },
  {
    what: "an unknown key with a typo",
    yaml: base + "    wieght: 2\n",
    path: "uplinks.isp2.wieght",
    line: 13,
    hint: /did you mean weight\?/,
  },
  {
    what: "an unknown top-level key with a typo",
    yaml: base + "balanse: { method: random }\n",
    path: "balanse",
    line: 13,
    hint: /did you mean balance\?/,
  },
  {
    what: "an unknown key that resembles nothing",
    yaml: base + "    colour: blue\n",
    path: "uplinks.isp2.colour",
    line: 13,
    hint: /the keys here are interface, gateway, weight, nat, probe/,
  },
  {
    what: "a method typo (roundrobin)",
    yaml: base + "balance: { method: roundrobin }\n",
    path: "balance.method",
    line: 13,
    hint: /did you mean round-robin\?/,
  },
  {
    what: "a negative weight",
    yaml: base.replace("weight: 1", "weight: -1"),
    path: "uplinks.isp2.weight",
    line: 11,
    hint: /whole number from 0 to 10000 \(got -1\)/,
  },
  {
    what: "a weight written as a word",
    yaml: base.replace("weight: 1", "weight: heavy"),
    path: "uplinks.isp2.weight",
    line: 11,
    hint: /expected a number \(got "heavy"\)/,
  },
  {
    what: "two uplinks on one interface",
    yaml: base.replace("interface: wan2", "interface: wan1"),
    path: "uplinks.isp2.interface",
    line: 9,
    hint: /already used by uplink isp1: one uplink per interface/,
  },
  {
    what: "a rule via an unknown uplink (typo)",
    yaml: base + "rules:\n  - name: smtp\n    port: 25\n    via: [isp3]\n",
    path: "rules[0].via[0]",
    line: 16,
    hint: /unknown uplink isp3: did you mean isp1\?/,
  },
  {
    what: "a rule via an uplink that is not there at all",
    yaml: base + "rules:\n  - name: smtp\n    port: 25\n    via: [backup]\n",
    path: "rules[0].via[0]",
    line: 16,
    hint: /the uplinks are isp1, isp2/,
  },
  {
    what: "via written as a single name",
    yaml: base + "rules:\n  - name: smtp\n    port: 25\n    via: isp1\n",
    path: "rules[0].via",
    line: 16,
    hint: /write via: \[isp1\] or via: main/,
  },
  {
    what: "a port out of range",
    yaml: base + "rules:\n  - { name: x, protocol: tcp, port: 70000, via: [isp1] }\n",
    path: "rules[0].port",
    line: 14,
    hint: /from 1 to 65535 \(got 70000\)/,
  },
  {
    what: "a prefix with host bits",
    yaml: base + "rules:\n  - name: lan\n    destination: [10.0.0.1/8]\n    via: main\n",
    path: "rules[0].destination[0]",
    line: 15,
    hint: /host bits set; did you mean 10\.0\.0\.0\/8\?/,
  },
  {
    what: "a backend address without its port",
    yaml: service("      - { address: 198.51.100.11 }\n"),
    path: "services.web.backends[0].address",
    line: 6,
    hint: /has no port: write 198\.51\.100\.11:PORT/,
  },
  {
    what: "one VIP written two ways (2001:0db8::10 and 2001:db8::10)",
    yaml: `version: 1
services:
  web:
    listen: "[2001:db8::10]:80"
    backends: [{ address: "[2001:db8::11]:80" }]
  web2:
    listen: "[2001:0db8::10]:80"
    backends: [{ address: "[2001:db8::12]:80" }]
`,
    path: "services.web2.listen",
    line: 7,
    hint: /already used by service web \(written \[2001:db8::10\]:80 there\): give each service its own address or port/,
  },
  {
    what: "one backend listed twice, written two ways",
    yaml: service(
      '      - { address: "[2001:db8::11]:80" }\n      - { address: "[2001:db8:0::11]:80" }\n',
      '"[2001:db8::10]:80"',
    ),
    path: "services.web.backends[1].address",
    line: 7,
    hint: /duplicate backend .*list each backend once/,
  },
  {
    what: "an etcd endpoint with an ftp:// URL",
    yaml: cluster("  etcd: [ftp://192.0.2.10:2379]\n"),
    path: "cluster.etcd[0]",
    line: 6,
    hint: /http:\/\/ or https:\/\/ URLs \(got ftp:\/\/\): write it like https:\/\/192\.0\.2\.10:2379/,
  },
  {
    what: "etcd credentials written into the URL",
    yaml: cluster("  etcd: [https://root:hunter2@192.0.2.10:2379]\n"),
    path: "cluster.etcd[0]",
    line: 6,
    hint: /remove the user name and password from the URL \(write https:\/\/192\.0\.2\.10:2379\)/,
  },
  {
    what: "etcd written as one URL, not a list",
    yaml: cluster("  etcd: http://192.0.2.10:2379\n"),
    path: "cluster.etcd",
    line: 6,
    hint: /expected a list.*write \[http:\/\/192\.0\.2\.10:2379\]/,
  },
  {
    what: "an upper-case uplink name",
    yaml: base.replace("isp2:", "ISP2:").replace("[isp1, isp2]", ""),
    path: "uplinks.ISP2",
    line: 8,
    hint: /lower-case.*write isp2/,
  },
  {
    what: "yes where YAML 1.2 wants true",
    yaml: base + "balance: { flush_on_down: yes }\n",
    path: "balance.flush_on_down",
    line: 13,
    hint: /write true/,
  },
  {
    what: "a missing version",
    yaml: base.replace("version: 1\n", ""),
    path: "version",
    line: 1,
    hint: /add version: 1/,
  },
  {
    what: "an uplink left empty",
    yaml: base + "  isp3:\n",
    path: "uplinks.isp3",
    line: 13,
    hint: /is empty: give it its keys/,
  },
  {
    what: "a service without its listen address",
    yaml: "version: 1\nservices:\n  web:\n    backends: [{ address: 198.51.100.11:80 }]\n",
    path: "services.web.listen",
    line: 3,
    hint: /missing: add listen:/,
  },
  {
    what: "a rule with neither via nor sticky",
    yaml: base + "rules:\n  - name: x\n    protocol: tcp\n",
    path: "rules[0]",
    line: 14,
    hint: /add via: \[UPLINK\], via: main or sticky: 30m/,
  },
  {
    what: "icmp with a port",
    yaml: base + "rules:\n  - { name: x, protocol: icmp, port: 8, via: [isp1] }\n",
    path: "rules[0].port",
    line: 14,
    hint: /remove port, or use protocol: tcp or udp/,
  },
  {
    what: "a mark mask too narrow for the uplinks",
    yaml: "mark_mask: 0x3\n" + base + "  isp3: { interface: wan3, probe: { targets: [198.18.100.3] } }\n",
    path: "mark_mask",
    line: 1,
    hint: /mark_mask leaves room for 2 uplinks, the config has 3: widen it/,
  },
  {
    what: "rule priorities that reach the main table's rule",
    yaml: base + "rule_priority_base: 32000\n",
    path: "rule_priority_base",
    line: 13,
    hint: /from 1 to 31000 \(got 32000\)/,
  },
  {
    what: "too many probe targets",
    yaml: base.replace(
      "[198.18.100.2]",
      `[${Array.from({ length: 17 }, (_, i) => `198.18.1.${i + 1}`).join(", ")}]`,
    ),
    path: "uplinks.isp2.probe.targets",
    line: 12,
    hint: /at most 16 items \(has 17\)/,
  },
  {
    what: "probe timeout far beyond the interval",
    yaml: base.replace("[198.18.100.2] }", "[198.18.100.2], interval: 10ms, timeout: 1s }"),
    path: "uplinks.isp2.probe.timeout",
    line: 12,
    hint: /shorten it or lengthen interval/,
  },
];

test("at least twenty broken configs in the table", () => {
  assert.ok(cases.length >= 20, `${cases.length}`);
});

for (const c of cases) {
  test(`refused with path, line and a fix: ${c.what}`, () => {
    const issues = issuesOf(c.yaml);
    const listing = issues.map((i) => `${formatPath(i.path)}:${i.line}: ${i.message}`).join("\n");
    const hit = issues.find((i) => formatPath(i.path) === c.path);
    assert.ok(hit, `no issue at ${c.path}:\n${listing}`);
    assert.equal(hit.line, c.line, listing);
    assert.match(hit.message, c.hint, listing);
    assert.doesNotMatch(hit.message, /Invalid input|Invalid option|Too small|Too big/, listing);
  });
}

test("URL credentials never appear in an error", () => {
  const text = cluster("  etcd: [ftp://root:hunter2@192.0.2.10:2379]\n");
  try {
    parseConfig(text);
    assert.fail("accepted");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.doesNotMatch(e.message, /hunter2|root:/);
    assert.match(e.message, /cluster\.etcd\[0\] \(line 6/);
  }
});

test("a secret's value is not echoed either (api.token)", () => {
  try {
    parseConfig(base + "api: { token: 1234567890 }\n");
    assert.fail("accepted");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.doesNotMatch(e.message, /1234567890/);
    assert.match(e.message, /api\.token \(line 13.*expected text/);
  }
});

test("a YAML alias bomb is a clean error, not a stack trace or a hang", () => {
  const lines = ["version: 1", 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]'];
  for (let i = 1; i < 12; i++) {
    const prev = String.fromCharCode(96 + i);
    const cur = String.fromCharCode(97 + i);
    lines.push(`${cur}: &${cur} [${Array<string>(10).fill(`*${prev}`).join(", ")}]`);
  }
  const t0 = Date.now();
  const [i] = issuesOf(lines.join("\n") + "\n");
  assert.ok(Date.now() - t0 < 2000);
  assert.match(i?.message ?? "", /aliases expand to too much/);
});

test("a huge file is refused before it is parsed", () => {
  const [i] = issuesOf(base + "#" + "x".repeat(MAX_CONFIG_BYTES) + "\n");
  assert.match(i?.message ?? "", new RegExp(`at most ${MAX_CONFIG_BYTES}$`));
});

test("__proto__ and constructor are unknown keys, not object internals", () => {
  const p = issuesOf(base + "__proto__: { polluted: true }\n");
  assert.equal(formatPath(p[0]?.path ?? []), "__proto__");
  const c = issuesOf(base.replace("isp2:", "constructor:"));
  assert.ok(c.length > 0);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test("no refusal anywhere says zod's raw 'Invalid input'", () => {
  const odd = [
    base + "uplinks: [a, b]\n",
    base.replace("weight: 1", "weight: [1]"),
    base + "rules: { a: 1 }\n",
    base + "rules:\n  - { name: x, port: true, via: [isp1] }\n",
    base + "on_change: /bin/true\n",
    base + "api: { listen: 9110 }\n",
    cluster("  vip: [1, 2]\n"),
    cluster("  buckets: many\n"),
    "version: 1\nuplinks: 5\n",
    "[]\n",
    "just text\n",
  ];
  for (const text of odd) {
    for (const i of issuesOf(text)) assert.doesNotMatch(i.message, /^Invalid input$|Invalid input:/, text);
  }
});

test("every key, given a value of the wrong kind: a message in the config's terms, with a line", () => {
  // One valid config that sets every key; each key in turn gets each wrong value.
  const full = {
    version: 1,
    uplinks: {
      isp1: {
        interface: "wan1",
        gateway: "100.64.1.1",
        weight: 1,
        nat: "masquerade",
        probe: {
          method: "icmp",
          targets: ["198.18.0.1"],
          port: 80,
          path: "/",
          size: 56,
          interval: "1s",
          timeout: "1s",
          down_after: 3,
          up_after: 3,
          min_targets: 1,
          max_rtt: "1s",
          max_loss: 0.5,
        },
      },
      isp2: { interface: "wan2", probe: { targets: ["198.18.0.2"] } },
    },
    balance: {
      from: ["lan0"],
      sources: ["10.0.0.0/8"],
      method: "random",
      primary: ["isp1"],
      flush_on_down: true,
    },
    rules: [
      { name: "r", destination: ["10.0.0.0/8"], protocol: "tcp", port: 80, via: ["isp1"], sticky: "1m" },
    ],
    services: {
      web: {
        listen: "192.0.2.1:80",
        scheduler: "maglev",
        check: { method: "tcp", interval: "1s", timeout: "1s", rise: 1, expect_status: 200 },
        backends: [{ address: "192.0.2.2:80", weight: 1 }],
      },
    },
    cluster: {
      name: "c",
      vip: "192.0.2.9",
      interface: "eth0",
      buckets: 16,
      etcd: ["http://127.0.0.1:2379"],
      lease: "2s",
    },
    api: { listen: "127.0.0.1:9110", token: "0123456789" },
    on_change: ["/bin/true"],
  };
  parseConfig(stringify(full));
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, p: (string | number)[]) => {
    if (p.length) paths.push(p);
    if (v && typeof v === "object")
      for (const [k, c] of Object.entries(v)) walk(c, [...p, Array.isArray(v) ? Number(k) : k]);
  };
  walk(full, []);
  for (const p of paths) {
    for (const wrong of [true, "x", -1, 1.5, null, []]) {
      const c = structuredClone(full) as Record<string | number, unknown>;
      let o = c;
      for (const k of p.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
      o[p[p.length - 1] as string | number] = wrong;
      const text = stringify(c);
      let issues: ReturnType<typeof issuesOf> = [];
      try {
        parseConfig(text);
        continue; // a few are right somewhere: true for flush_on_down
      } catch (e) {
        assert.ok(e instanceof ConfigError, `${p.join(".")} = ${JSON.stringify(wrong)}: ${String(e)}`);
        issues = e.issues;
      }
      for (const i of issues) {
        const where = `${p.join(".")} = ${JSON.stringify(wrong)}: ${formatPath(i.path)}: ${i.message}`;
        assert.ok((i.line ?? 0) > 0, where);
        assert.doesNotMatch(i.message, /Invalid|Too small|Too big|received|expected [a-z]+,/, where);
      }
    }
  }
});
