// The validated-config cache of `plan` and `apply` (src/config/cached.ts): a hit is the very config
// a fresh read gives, any change to the file is a miss, and an invalid config is never kept.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadConfigCached, withPositions } from "../../src/config/cached.ts";
import { parseConfigSource } from "../../src/config/load.ts";
import { systemCheck } from "../../src/config/system-checks.ts";

const examples = readdirSync("examples").filter((f) => f.endsWith(".yaml"));

function withDir(fn: (dir: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "nflb-cached-test-"));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** Four uplinks and one rule with 1,000 prefixes (long enough for the fast reader). */
const bigYaml = [
  "version: 1",
  "balance:",
  "  from: [lan0]",
  "uplinks:",
  ...[0, 1, 2, 3].flatMap((i) => [
    `  isp${i}:`,
    `    interface: u${i}`,
    `    gateway: 100.64.${i}.1`,
    "    weight: 1",
    "    nat: masquerade",
  ]),
  "rules:",
  "  - name: r0",
  "    via: [isp0, isp1]",
  "    destination:",
  ...Array.from({ length: 1000 }, (_, k) => `      - 198.${18 + (k >> 8)}.${k & 255}.0/24`),
  "",
].join("\n");

test("a validated config survives JSON whole: every example and 1,000 prefixes", () => {
  for (const f of examples) {
    const c = parseConfigSource(readFileSync(join("examples", f), "utf8"), f).config;
    assert.deepStrictEqual(JSON.parse(JSON.stringify(c)), c, f);
  }
  const c = parseConfigSource(bigYaml).config;
  assert.deepStrictEqual(JSON.parse(JSON.stringify(c)), c);
});

test(
  "the second read of the same text is a hit, equal to a fresh read; an edit is a miss",
  withDir(async (dir) => {
    const file = join(dir, "nflb.yaml");
    const cache = join(dir, "cache");
    const where = { dir: cache, build: "test-1" };
    await import("node:fs/promises").then((fs) => fs.mkdir(cache));
    for (const text of [bigYaml, ...examples.map((f) => readFileSync(join("examples", f), "utf8"))]) {
      writeFileSync(file, text);
      const first = await loadConfigCached(file, where);
      assert.ok(!("cached" in first));
      const second = await loadConfigCached(file, where);
      assert.ok("cached" in second, "second read from the cache");
      assert.deepStrictEqual(second.config, parseConfigSource(text, file).config);
      // One entry: the last text's.
      assert.equal(readdirSync(cache).length, 1);
    }
    // Another build does not take it.
    assert.ok(!("cached" in (await loadConfigCached(file, { dir: cache, build: "test-2" }))));
    // Without a build id (tsx), or without a directory, no cache at all.
    assert.ok(!("cached" in (await loadConfigCached(file, { dir: cache, build: undefined }))));
    assert.ok(!("cached" in (await loadConfigCached(file, { dir: undefined, build: "test-1" }))));
  }),
);

test(
  "an invalid config is reported with its line, cached or not, and never kept",
  withDir(async (dir) => {
    const file = join(dir, "nflb.yaml");
    const cache = join(dir, "cache");
    await import("node:fs/promises").then((fs) => fs.mkdir(cache));
    const where = { dir: cache, build: "test-1" };
    writeFileSync(file, bigYaml.replace("weight: 1", "weight: -1"));
    await assert.rejects(loadConfigCached(file, where), /weight/);
    await assert.rejects(loadConfigCached(file, where), /weight/);
    assert.deepEqual(readdirSync(cache), []);
    // A check against this host on a cached config still names the line.
    writeFileSync(file, bigYaml);
    await loadConfigCached(file, where);
    const hit = await loadConfigCached(file, where);
    assert.ok("cached" in hit);
    const issues = systemCheck(hit.config, { interfaces: new Map(), complete: true });
    assert.ok(issues.length > 0);
    const located = (await withPositions(hit)).locate(issues);
    assert.ok(
      located.every((i) => typeof i.line === "number"),
      JSON.stringify(located[0]),
    );
  }),
);

test(
  "a broken cache entry is a miss",
  withDir(async (dir) => {
    const file = join(dir, "nflb.yaml");
    const cache = join(dir, "cache");
    await import("node:fs/promises").then((fs) => fs.mkdir(cache));
    const where = { dir: cache, build: "test-1" };
    writeFileSync(file, bigYaml);
    await loadConfigCached(file, where);
    const [entry] = readdirSync(cache);
    writeFileSync(join(cache, entry as string), '{"uplinks": ');
    const again = await loadConfigCached(file, where);
    assert.ok(!("cached" in again));
    assert.deepStrictEqual(again.config, parseConfigSource(bigYaml, file).config);
  }),
);
