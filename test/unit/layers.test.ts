// Layers that point one way (ARCHITECTURE.md): a module imports only from its own folder or from
// layers below it. A plain scan of import specifiers, no dependency: good enough for a codebase
// that writes every import as a relative path with its extension.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * From the bottom up. A folder may import its own files and any folder of a lower rank; folders
 * of the same rank do not import each other. src/paths.ts counts as `net` (shared, no deps).
 */
const RANKS: string[][] = [
  ["net"], // addresses, interface facts, repo paths: pure helpers everyone uses
  ["config"], // YAML → validated Config
  ["nft"], // the typed nft model, its serializer and diff; the ruleset parser, fake nft and tracer (pure)
  ["plan"], // Config + health + facts → what the kernel should hold (pure)
  ["render"], // plan → nft / ip text (pure)
  ["system"], // the only modules that run nft, ip, conntrack, sysctl (argv and stdin, no shell)
  ["apply"], // diff live vs wanted, one nft transaction + one ip batch per family, rollback
  ["dns"], // the DNS forwarder that fills the domain rules' sets
  ["health", "exec", "metrics", "api"], // probes, exec pinning, metrics, HTTP API: beside each other
  ["daemon"], // `nflb run`: the reconcile loop wiring the layers below
  ["cluster"], // shared VIP over etcd, on top of the daemon
  ["explain", "lab"], // `nflb explain` (live status + ruleset tracer), the namespace lab
  ["cli"], // the verbs: the only folder that may reach every other
];

/**
 * Upward imports other helpers are still removing (issue 12). Each names the importing file and
 * the folder it reaches up to. Remove a line when its import is gone (the test says which).
 */
const KNOWN: { from: string; to: string; why: string }[] = [
  // The "model" helper replaces Desired's nft strings with a typed model; composing the nft text
  // belongs above render (or desired.ts returns the model and render serializes it).
  { from: "src/plan/desired.ts", to: "render", why: "model helper: desiredState renders nft text" },
  { from: "src/plan/desired.ts", to: "cluster", why: "model/cluster helpers: cluster plan+render" },
  // The composition root for `nflb run` lives in daemon/ but builds the cluster part: it moves
  // up to src/cli (not this helper's) or the cluster part is injected by the caller.
  { from: "src/daemon/factories.ts", to: "cluster", why: "daemon ↔ cluster: move to src/cli" },
];

interface Edge {
  from: string;
  to: string;
}

function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== "node_modules" && e.name !== "vendor") out.push(...files(p));
    } else if (/\.(ts|mts)$/.test(e.name)) out.push(p);
  }
  return out;
}

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm;

function edges(dir: string): Edge[] {
  const out: Edge[] = [];
  for (const f of files(dir)) {
    const text = readFileSync(join(ROOT, f), "utf8");
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? "";
      if (!spec.startsWith(".")) continue;
      out.push({ from: f, to: relative(ROOT, resolve(ROOT, dirname(f), spec)) });
    }
  }
  return out;
}

/** The layer folder of a path under src/, or null (src/paths.ts is shared like net/). */
function layer(path: string): string | null {
  const m = /^src\/([^/]+)\//.exec(path);
  if (m) return m[1] ?? null;
  return path === "src/paths.ts" ? "net" : null;
}

const rank = (l: string) => RANKS.findIndex((r) => r.includes(l));

test("every folder under src/ has a rank", () => {
  const folders = new Set(
    files("src")
      .map(layer)
      .filter((l): l is string => l !== null),
  );
  assert.deepEqual(
    [...folders].filter((f) => rank(f) < 0),
    [],
    "a new folder under src/ needs a place in RANKS (and ARCHITECTURE.md)",
  );
});

test("src/ imports point down the layers (known exceptions listed, with who fixes them)", (t) => {
  const bad: string[] = [];
  const used = new Set<(typeof KNOWN)[number]>();
  for (const e of edges("src")) {
    const from = layer(e.from);
    const to = layer(e.to);
    // package.json is data (the version, inlined by the bundler), not code of another layer.
    if (e.to === "package.json") continue;
    if (!e.to.startsWith("src/")) {
      bad.push(`${e.from} → ${e.to}: src/ imports nothing outside src/ (tests, bench, testkit)`);
      continue;
    }
    if (!from || !to || from === to) continue;
    const ok = rank(to) < rank(from);
    if (ok) continue;
    const known = KNOWN.find((k) => k.from === e.from && k.to === to);
    if (known) {
      used.add(known);
      continue;
    }
    bad.push(`${e.from} → ${e.to}: ${from} (rank ${rank(from)}) may not import ${to} (rank ${rank(to)})`);
  }
  for (const k of KNOWN)
    if (!used.has(k)) t.diagnostic(`known exception gone, remove it from KNOWN: ${k.from} → ${k.to}`);
  assert.deepEqual(bad, []);
});

test("bench/ and testkit/ never import test/", () => {
  const bad = [...edges("bench"), ...edges("testkit")]
    .filter((e) => e.to.startsWith("test/"))
    .map((e) => `${e.from} → ${e.to}`);
  assert.deepEqual(bad, [], "shared fakes and harnesses live in testkit/");
});

test("the scan sees imports (guards the regex)", () => {
  const all = edges("src");
  assert.ok(all.some((e) => e.from === "src/apply/dataplane.ts" && e.to === "src/system/nft.ts"));
  assert.ok(all.some((e) => e.from === "src/daemon/status.ts" && e.to === "src/api/status.ts"));
});
