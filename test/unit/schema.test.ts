// Issue 6, "what it must show" 5: the JSON Schema is generated from the validation schema, accepts
// every example and rejects the bad configs the config tests use (as far as JSON Schema can say).
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";
import { Ajv2020 } from "ajv/dist/2020.js";
import { parse } from "yaml";
import { ConfigError } from "../../src/config/issues.ts";
import { parseConfig } from "../../src/config/load.ts";
import { generateSchema, SCHEMA_FILE } from "../../scripts/gen-schema.ts";
import { CONFIG_DOC_FILE, generateConfigDoc } from "../../scripts/gen-config-doc.ts";
import { TWO_UPLINKS } from "../../testkit/config-text.ts";

const examplesDir = new URL("../../examples/", import.meta.url);
const examples = readdirSync(examplesDir).filter((f) => f.endsWith(".yaml"));
const committed = readFileSync(SCHEMA_FILE, "utf8");

// Strict mode refuses unknown keywords and formats, so the schema stays usable by any validator
// (strictRequired would forbid the top-level "at least one of" anyOf, which is valid JSON Schema).
// Formats (uri) are annotations here: nflb's own validation checks the values.
const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true, validateFormats: false });
const validate = ajv.compile(JSON.parse(committed) as object);

const valid = (doc: unknown) => {
  const ok = validate(doc);
  return { ok, errors: ajv.errorsText(validate.errors) };
};

test("the committed schema is exactly what the generator writes now (npm run gen:schema)", async () => {
  assert.equal(
    committed,
    await generateSchema(),
    "contrib/nflb.schema.json is stale: run npm run gen:schema",
  );
});

test("docs/CONFIG.md is exactly what the generator writes now (npm run gen:schema)", async () => {
  assert.equal(
    readFileSync(CONFIG_DOC_FILE, "utf8"),
    await generateConfigDoc(),
    "docs/CONFIG.md is stale: run npm run gen:schema",
  );
});

test("docs/CONFIG.md lists every key of the schema with a type, a default or requirement, and an example", () => {
  const doc = readFileSync(CONFIG_DOC_FILE, "utf8");
  const keys: string[] = [];
  const walk = (node: Record<string, unknown>, path: string) => {
    for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) {
      const p = path ? `${path}.${k}` : k;
      keys.push(p);
      walk(v, p);
    }
    const more = node.additionalProperties;
    if (more && typeof more === "object") walk(more as Record<string, unknown>, `${path}.NAME`);
    const items = node.items;
    if (items && typeof items === "object") walk(items as Record<string, unknown>, `${path}[]`);
  };
  walk(JSON.parse(committed) as Record<string, unknown>, "");
  assert.ok(keys.length > 60, String(keys.length));
  for (const k of keys) {
    const at = doc.indexOf(`### \`${k}\``);
    assert.ok(at >= 0, `no entry for ${k}`);
    const next = doc.indexOf("\n### ", at + 1);
    const entry = doc.slice(at, next < 0 ? undefined : next);
    assert.match(entry, /- type: /, k);
    assert.match(entry, /- (default: |required|optional)/, k);
    assert.match(entry, /Example: `|```yaml/, k);
  }
  assert.match(
    doc,
    /### `uplinks\.NAME\.probe\.interval`[\s\S]*?default: `200ms`[\s\S]*?bounds: 10ms to 60s/,
  );
});

test("the schema accepts every example config", () => {
  assert.ok(examples.length >= 5, `examples: ${examples.join(", ")}`);
  for (const f of examples) {
    const doc: unknown = parse(readFileSync(new URL(f, examplesDir), "utf8"));
    const r = valid(doc);
    assert.ok(r.ok, `${f}: ${r.errors}`);
  }
});

const base = TWO_UPLINKS;

/** Bad configs of test/unit/config.test.ts and more, each rejected by nflb itself and by the schema. */
const bad: Record<string, string> = {
  "unknown key": base + "    bogus: 1\n",
  "unknown top-level key": base + "uplink: {}\n",
  "negative weight": base.replace("weight: 1", "weight: -1"),
  "fractional weight": base.replace("weight: 1", "weight: 1.5"),
  "weight of the wrong type": base.replace("weight: 1", "weight: heavy"),
  "wrong enum (nat)": base + "    nat: masq\n",
  "wrong enum (method)": base + "balance: { method: weighted }\n",
  "malformed duration": base + "    probe: { interval: 2 seconds }\n",
  "port out of range": base + "rules:\n  - { name: x, protocol: tcp, port: 70000, via: [isp1] }\n",
  "via that is neither a list nor main": base + "rules:\n  - { name: x, protocol: tcp, via: isp1 }\n",
  "rule without a name": base + "rules:\n  - { protocol: tcp, via: [isp1] }\n",
  "upper-case uplink name": base.replace("isp2:", "ISP2:"),
  "interface name too long": base.replace("wan2", "a-very-long-interface"),
  "missing version": base.replace("version: 1\n", ""),
  "version 2": base.replace("version: 1", "version: 2"),
  "empty config": "version: 1\n",
  "service without backends": "version: 1\nservices:\n  web: { listen: 203.0.113.10:80, backends: [] }\n",
  "short api token": base + "api: { token: abc }\n",
  "cluster without a vip": "version: 1\ncluster: { name: web, interface: eth0 }\n",
};

for (const [what, text] of Object.entries(bad)) {
  test(`the schema rejects a bad config: ${what}`, () => {
    assert.throws(() => parseConfig(text), ConfigError, "nflb itself rejects it");
    assert.equal(valid(parse(text)).ok, false, "the JSON Schema rejects it");
  });
}

test("checks across keys are nflb's alone: the schema accepts what only `nflb check` rejects", () => {
  // JSON Schema cannot say "via names an uplink defined elsewhere" or "no interface twice".
  for (const text of [
    base + "rules:\n  - { name: x, destination: [203.0.113.0/24], via: [isp1, isp9] }\n",
    base.replace("interface: wan2", "interface: wan1"),
    base + "rules:\n  - { name: x, destination: [10.0.0.1/8], via: [isp1] }\n",
  ]) {
    assert.throws(() => parseConfig(text), ConfigError);
    assert.equal(valid(parse(text)).ok, true);
  }
});
