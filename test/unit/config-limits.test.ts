// limits.ts holds what planning and the cross-checks need of the schema (limits, passive
// defaults) so that `plan` and `apply` of a cached config never build the zod schemas.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { staticClosure } from "../../testkit/bundle-closure.ts";
import { passiveSchema, uplinkPassiveSchema } from "../../src/config/schema.ts";
import {
  PASSIVE_DEFAULTS,
  passiveOf,
  UPLINK_PASSIVE_DEFAULTS,
  uplinkPassiveOf,
} from "../../src/config/limits.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

test("passive: true means the schema's defaults", () => {
  assert.deepEqual(UPLINK_PASSIVE_DEFAULTS, uplinkPassiveSchema.parse({}));
  assert.deepEqual(PASSIVE_DEFAULTS, passiveSchema.parse({}));
  assert.deepEqual(uplinkPassiveOf({ passive: true }), uplinkPassiveSchema.parse({}));
  assert.deepEqual(passiveOf({ passive: true }), passiveSchema.parse({}));
  assert.equal(uplinkPassiveOf({ passive: false }), null);
  assert.equal(passiveOf({ passive: false }), null);
  // A copy each time: a caller may not change the defaults of the next.
  assert.notEqual(uplinkPassiveOf({ passive: true }), uplinkPassiveOf({ passive: true }));
});

test("plan and apply's action loads no zod, no schema, no YAML reader, no node:crypto (a cached config needs none)", async () => {
  const r = await build({
    entryPoints: [`${ROOT}src/cli/actions-config.ts`],
    absWorkingDir: ROOT,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    packages: "external",
    outdir: "out",
    metafile: true,
    write: false,
    logLevel: "silent",
  });
  const outputs = r.metafile.outputs;
  // What loads with the action: its chunk and every chunk it imports statically (dynamic imports
  // are what a miss or an error loads).
  const entry = Object.keys(outputs).find((k) => outputs[k]?.entryPoint === "src/cli/actions-config.ts");
  assert.ok(entry);
  const { inputs, externals } = staticClosure(outputs, entry);
  assert.ok(inputs.has("src/plan/uplinks.ts"), "the planner is in the closure");
  for (const heavy of ["src/config/schema.ts", "src/config/load.ts", "src/config/load-fast.ts"])
    assert.ok(!inputs.has(heavy), `${heavy} loads with apply's action`);
  // node:crypto alone takes 5–8 ms to load: config/cached.ts compares the text instead of
  // hashing it, plan/maglev.ts loads it when a table is built.
  for (const pkg of ["zod", "yaml", "commander", "node:crypto", "crypto"])
    assert.ok(!externals.has(pkg), `${pkg} loads with apply's action`);
});
