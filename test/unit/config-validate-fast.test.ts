// Long lists (backends, prefixes) checked in one loop (src/config/validate-fast.ts) give the very
// config zod gives; anything not plainly valid in them is left to zod, whose errors name the YAML
// path and line as for any config.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseDocument } from "yaml";
import { ConfigError, formatPath } from "../../src/config/issues.ts";
import { parseConfigSource } from "../../src/config/load.ts";
import { configSchema } from "../../src/config/schema.ts";
import { validateFast } from "../../src/config/validate-fast.ts";

const zodOf = (text: string) => configSchema.parse(parseDocument(text).toJS());
const rawOf = (text: string): unknown => parseDocument(text).toJS();

const backendLine = (i: number) => {
  const extra = [i % 3 ? `weight: ${i % 7}` : "", i % 5 === 2 ? `backup: ${i % 2 === 0}` : ""].filter(
    Boolean,
  );
  return `      - { address: 198.18.${i >> 8}.${i & 255}:80${extra.map((e) => `, ${e}`).join("")} }`;
};
const services = (n: number, line = backendLine) => `version: 1
services:
  web:
    listen: 203.0.113.10:80
    backends:
${Array.from({ length: n }, (_, i) => line(i)).join("\n")}
  dns:
    listen: '[2001:db8::53]:53'
    protocol: udp
    backends:
${Array.from({ length: n }, (_, i) => `      - address: '[2001:db8::${i + 1}]:53'`).join("\n")}
`;

const prefixes = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => `      - 198.18.${from + i}.0/24`);
const rules = (n: number) => `version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, probe: { targets: [198.18.100.1] } }
  isp2: { interface: wan2, gateway: 100.64.2.1, probe: { targets: [198.18.100.2] } }
balance:
  method: source-hash
  sources:
${prefixes(n, 100)
  .map((l) => l.slice(2))
  .join("\n")}
rules:
  - name: office
    via: [isp1]
    destination:
${prefixes(n).join("\n")}
    source:
${prefixes(n, 50).join("\n")}
  - name: short
    via: [isp2]
    destination: [2001:db8::/32]
`;

test("long lists checked in one loop: the same config as zod's, for backends and prefixes", () => {
  for (const text of [services(40), services(300), rules(40), rules(120), services(3), rules(2)]) {
    const fast = validateFast(rawOf(text));
    assert.ok(fast, `${text.length} ${text.slice(0, 100)}`);
    assert.deepStrictEqual(fast, zodOf(text));
    assert.deepStrictEqual(parseConfigSource(text).config, zodOf(text));
  }
});

test("a list with anything zod would refuse is left to zod", () => {
  const bad: [string, (i: number) => string][] = [
    ["bad address", (i) => (i === 33 ? "      - { address: 198.18.0.1 }" : backendLine(i))],
    ["unknown key", (i) => (i === 34 ? "      - { address: 198.18.0.34:80, wieght: 2 }" : backendLine(i))],
    ["weight", (i) => (i === 35 ? "      - { address: 198.18.0.35:80, weight: 1.5 }" : backendLine(i))],
    ["backup", (i) => (i === 36 ? "      - { address: 198.18.0.36:80, backup: yes }" : backendLine(i))],
    ["not a mapping", (i) => (i === 37 ? "      - 198.18.0.37:80" : backendLine(i))],
  ];
  for (const [what, line] of bad) assert.equal(validateFast(rawOf(services(40, line))), undefined, what);
  assert.equal(validateFast(rawOf(services(1025))), undefined, "too many backends");
  assert.equal(
    validateFast(rawOf(rules(40).replace("198.18.7.0/24", "198.18.7.1/24"))),
    undefined,
    "host bits",
  );
  assert.equal(validateFast(rawOf(rules(40).replace("198.18.7.0/24", "7"))), undefined, "a number");
});

test("errors in long lists name their YAML path and line, as for a short list", () => {
  const errorsOf = (text: string) => {
    try {
      parseConfigSource(text, "bad.yaml");
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.issues.map((i) => `${formatPath(i.path)}:${i.line}: ${i.message}`);
    }
    return assert.fail("no error");
  };
  const text = services(40, (i) =>
    i === 33
      ? "      - { address: 198.18.0.1 }"
      : i === 34
        ? "      - { address: 198.18.0.34:80, wieght: 2 }"
        : backendLine(i),
  );
  assert.deepEqual(errorsOf(text), [
    "services.web.backends[33].address:39: 198.18.0.1 has no port: write 198.18.0.1:PORT, like 198.18.0.1:80",
    "services.web.backends[34].wieght:40: unknown key wieght: did you mean weight?",
  ]);
  const dup = services(40, (i) => (i === 30 ? "      - { address: 198.18.0.2:80 }" : backendLine(i)));
  assert.deepEqual(errorsOf(dup), [
    "services.web.backends[30].address:36: duplicate backend 198.18.0.2:80: list each backend once, with a weight",
  ]);
  assert.deepEqual(errorsOf(rules(40).replace("198.18.7.0/24", "198.18.7.1/24")), [
    "rules[0].destination[7]:59: 198.18.7.1/24 has host bits set; did you mean 198.18.7.0/24?",
  ]);
});
