// The validated-config cache of `plan` and `apply` (src/config/cached.ts): a hit is the very config
// a fresh read gives, any change to the file is a miss, and an invalid config is never kept.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  cacheSettled,
  entryConfig,
  holdsSecret,
  loadConfigCached,
  withPositions,
} from "../../src/config/cached.ts";
import { ConfigError } from "../../src/config/issues.ts";
import { parseConfigSource } from "../../src/config/load.ts";
import { systemCheck } from "../../src/config/system-checks.ts";

/** The cache directory's files once the last miss's entry is written (it is written in the background). */
const settledEntries = async (dir: string) => {
  await cacheSettled();
  return readdirSync(dir);
};

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
      assert.equal((await settledEntries(cache)).length, 1);
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
    assert.deepEqual(await settledEntries(cache), []);
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
    const [entry] = await settledEntries(cache);
    writeFileSync(join(cache, entry as string), '{"uplinks": ');
    const again = await loadConfigCached(file, where);
    assert.ok(!("cached" in again));
    assert.deepStrictEqual(again.config, parseConfigSource(bigYaml, file).config);
  }),
);

test(
  "a miss is read without positions when valid; withPositions still gives a later issue its line",
  withDir(async (dir) => {
    const file = join(dir, "nflb.yaml");
    writeFileSync(file, bigYaml);
    for (const where of [
      { dir: join(dir, "none"), build: undefined },
      { dir: undefined, build: "t" },
    ]) {
      const loaded = await loadConfigCached(file, where);
      assert.ok("positionless" in loaded && !("cached" in loaded));
      assert.deepStrictEqual(loaded.config, parseConfigSource(bigYaml, file).config);
      const issues = systemCheck(loaded.config, { interfaces: new Map(), complete: true });
      const located = (await withPositions(loaded)).locate(issues);
      assert.ok(located.length > 0 && located.every((i) => typeof i.line === "number"));
    }
  }),
);

/** The ConfigError's issues of a config loadConfigCached refuses. */
async function refused(file: string, where: { dir?: string; build?: string }) {
  try {
    await loadConfigCached(file, where);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  assert.fail("the config was accepted");
}

test(
  "an error in a config the fast reader reads is reported with its YAML path and line",
  withDir(async (dir) => {
    const file = join(dir, "nflb.yaml");
    const cache = join(dir, "cache");
    mkdirSync(cache);
    const where = { dir: cache, build: "test-1" };
    const lines = bigYaml.split("\n");
    const lineOf = (s: string) => lines.indexOf(s) + 1;
    const cases: { edit: (t: string) => string; path: (string | number)[]; line: number }[] = [
      // In the long list, which validate-fast.ts checks in its own loop.
      {
        edit: (t) => t.replace("      - 198.20.188.0/24", "      - 198.20.188.0/33"),
        path: ["rules", 0, "destination", 700],
        line: lineOf("      - 198.20.188.0/24"),
      },
      // A value zod checks.
      {
        edit: (t) => t.replace("weight: 1", "weight: lots"),
        path: ["uplinks", "isp0", "weight"],
        line: lineOf("  isp0:") + 3,
      },
      // A cross-check (an uplink the rule names that does not exist).
      {
        edit: (t) => t.replace("via: [isp0, isp1]", "via: [isp0, isp9]"),
        path: ["rules", 0, "via", 1],
        line: lineOf("    via: [isp0, isp1]"),
      },
      // An unknown key.
      {
        edit: (t) => t.replace("    nat: masquerade", "    nat: masquerade\n    wieght: 2"),
        path: ["uplinks", "isp0", "wieght"],
        line: lineOf("  isp0:") + 5,
      },
    ];
    for (const c of cases) {
      writeFileSync(file, c.edit(bigYaml));
      for (const w of [where, {}]) {
        const issues = await refused(file, w);
        const issue = issues.find((i) => JSON.stringify(i.path) === JSON.stringify(c.path));
        assert.ok(issue, `${JSON.stringify(c.path)} in ${JSON.stringify(issues)}`);
        assert.equal(issue.line, c.line, JSON.stringify(issue));
      }
    }
    assert.deepEqual(await settledEntries(cache), []);
  }),
);

test(
  "a config with a secret in it is never copied into the cache, and leaves no older entry",
  withDir(async (dir) => {
    const file = join(dir, "nflb.yaml");
    const cache = join(dir, "cache");
    mkdirSync(cache);
    const where = { dir: cache, build: "test-1" };
    writeFileSync(file, bigYaml);
    await loadConfigCached(file, where);
    assert.equal((await settledEntries(cache)).length, 1);
    for (const secret of ["api:\n  token: s3cr3t-t0ken-value\n"]) {
      writeFileSync(file, bigYaml + secret);
      const first = await loadConfigCached(file, where);
      assert.equal(first.config.api.token, "s3cr3t-t0ken-value");
      assert.deepEqual(await settledEntries(cache), []);
      const second = await loadConfigCached(file, where);
      assert.ok(!("cached" in second));
      assert.equal(second.config.api.token, "s3cr3t-t0ken-value");
    }
  }),
);

test("holdsSecret: a value under a secret's key, or credentials in a URL", () => {
  const c = parseConfigSource(bigYaml).config;
  assert.equal(holdsSecret(c), false);
  assert.equal(holdsSecret({ api: { token: "abcdefgh" } }), true);
  assert.equal(holdsSecret({ api: { token: null } }), false);
  assert.equal(holdsSecret({ cluster: { etcd: ["http://root:pw@192.0.2.1:2379"] } }), true);
  assert.equal(holdsSecret({ cluster: { etcd: ["http://192.0.2.1:2379"] } }), false);
  assert.equal(holdsSecret({ on_change: ["/usr/bin/curl", "https://u:p@example.net/hook"] }), true);
});

test("an entry answers only for its build and the very same text", () => {
  const text = "version: 1\nbalance:\n  method: random\n";
  const entry = `b1\n${text.length}\n${text}{"version":1}`;
  assert.deepEqual(entryConfig(entry, "b1", text), { version: 1 });
  assert.equal(entryConfig(entry, "b2", text), undefined);
  assert.equal(entryConfig(entry, "b1", text.replace("random", "rand0m")), undefined);
  assert.equal(entryConfig(entry, "b1", text + "#"), undefined);
  assert.equal(entryConfig(entry, "b1", text.slice(1)), undefined);
  assert.equal(entryConfig(`b1\n${text.length}\n${text}null`, "b1", text), undefined);
});

test(
  "a secret in a comment (the entry holds the text) is not kept either; a mere word is",
  withDir(async (dir) => {
    const file = join(dir, "nflb.yaml");
    const cache = join(dir, "cache");
    mkdirSync(cache);
    const where = { dir: cache, build: "test-1" };
    for (const [extra, kept] of [
      ["# api:\n#   token: s3cr3t-t0ken-value\n", false],
      ["# etcd: http://root:pw@192.0.2.1:2379\n", false],
      ["# set a token (api.token) before listening elsewhere\n", true],
    ] as const) {
      writeFileSync(file, bigYaml + extra);
      await loadConfigCached(file, where);
      assert.equal((await settledEntries(cache)).length, kept ? 1 : 0, extra);
      assert.equal("cached" in (await loadConfigCached(file, where)), kept, extra);
    }
  }),
);
