// The fast read of long prefix lists (src/config/yaml-fast.ts) gives exactly what `yaml` gives, or
// nothing; and a config read that way still reports errors and warnings with their YAML lines.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseDocument } from "yaml";
import { ConfigError } from "../../src/config/issues.ts";
import { parseConfigSource } from "../../src/config/load.ts";
import { fastYaml, MIN_RUN } from "../../src/config/yaml-fast.ts";
import { TWO_PROBED_UPLINKS } from "../../testkit/config-text.ts";

const slow = (text: string): unknown =>
  parseDocument(text, { uniqueKeys: true }).toJS({ maxAliasCount: 100 });
const fast = (text: string): unknown => fastYaml(text, { maxAliasCount: 100 });

const v4 = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `198.18.${from + i}.0/24`);
const items = (list: string[], indent = "      ") => list.map((p) => `${indent}- ${p}`).join("\n");

const config = (list: string[], extra = "") => `${TWO_PROBED_UPLINKS}rules:
  - name: office
    via: [isp1]
    destination:
${items(list)}
${extra}`;

test("fast and slow reads agree on lists of addresses and prefixes in many spellings", () => {
  const mixed = [
    ...v4(20),
    "2001:db8::/32",
    "::1",
    "::/0",
    "2001:db8:0:1::1",
    "198.51.100.7",
    "fe80::1:2:3:4/64",
    ...v4(20, 100),
  ];
  const texts = [
    config(v4(300)),
    config(mixed),
    // Comments after items, CRLF line ends, and a comment line splitting one list into two runs.
    config([...v4(20).map((p) => `${p}   # office ${p}`), ...v4(20, 50)]),
    config(v4(40)).replaceAll("\n", "\r\n"),
    config(v4(20)) +
      `  - name: b\n    via: [isp2]\n    destination:\n${items(v4(20, 30))}\n      # gap\n${items(v4(20, 60))}\n`,
    // A list at the same indent as its key, and a top-level list.
    `a:\n${items(v4(30), "")}\nb: 1\n`,
    items(v4(30), ""),
    // Items that are not all runs: a mapping among them, and values yaml reads as numbers.
    `list:\n${items(v4(20))}\n      - {x: 1}\n${items(v4(20, 40))}\n      - 10\n      - 1.5\n      - 0x10\n`,
  ];
  for (const text of texts) {
    const got = fast(text);
    assert.notEqual(got, undefined, text.slice(0, 200));
    assert.deepEqual(got, slow(text));
  }
});

test("the fast read gives up where the lines are not list items, and the ordinary read decides", () => {
  const lines = items(v4(MIN_RUN + 4), "  ");
  const texts = [
    `text: |\n${lines}\nafter: 1\n`,
    `text: >\n${lines}\n`,
    `text: "quoted\n${lines}\n  end"\n`,
    `text: plain\n${lines}\n`,
    `%YAML 1.1\n---\nlist:\n${lines}\n`,
    `list: [\n${lines}\n]\n`,
  ];
  for (const text of texts) {
    const got = fast(text);
    if (got !== undefined) assert.deepEqual(got, slow(text), text.slice(0, 80));
  }
  assert.equal(fast(`text: |\n${lines}\nafter: 1\n`), undefined);
  // Short lists are left to yaml.
  assert.equal(fast(config(v4(MIN_RUN - 1))), undefined);
});

test("a config with 10,000 prefixes: read fast, the same config as the ordinary read, and lines where asked", () => {
  const list = Array.from({ length: 10_000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  const text = config(list);
  const got = parseConfigSource(text, "big.yaml");
  assert.equal(got.config.rules[0]?.destination?.length, 10_000);
  assert.equal(got.config.rules[0]?.destination?.[9999], "10.39.15.0/24");
  // Asked for lines (a system check found something), it reads them.
  const [issue] = got.locate([{ path: ["rules", 0, "destination", 9999], message: "x" }]);
  assert.equal(issue?.line, 15 + 9999);
  assert.deepEqual(got.warnings, []);
});

test("an error in a long list names its YAML path and line", () => {
  const list = v4(200);
  list[150] = "198.18.150.1/24";
  list[160] = "300.1.1.1";
  const err = (() => {
    try {
      parseConfigSource(config(list), "bad.yaml");
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  assert.ok(err instanceof ConfigError);
  assert.deepEqual(
    err.issues.map((i) => [i.path.join("."), i.line]),
    [
      ["rules.0.destination.150", 15 + 150],
      ["rules.0.destination.160", 15 + 160],
    ],
  );
  assert.match(err.issues[0]?.message ?? "", /host bits set; did you mean 198\.18\.150\.0\/24/);
});

test("warnings of a config read fast carry their lines", () => {
  // No probe targets: a warning on the uplink's line.
  const text = config(v4(40)).replace("    probe: { targets: [198.18.100.1] }\n", "");
  const got = parseConfigSource(text, "warn.yaml");
  const w = got.warnings.find((i) => i.path.join(".") === "uplinks.isp1.probe.targets");
  assert.ok(w, JSON.stringify(got.warnings));
  assert.equal(w.line, 3);
});
