// What `nflb` loads before it knows the verb, exit-code mapping, and journald-style log lines.
import { test } from "node:test";
import assert from "node:assert/strict";
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { staticClosure } from "../../testkit/bundle-closure.ts";
import { DEFAULT_CONFIG_PATH } from "../../src/config/load.ts";
import { DEFAULT_API } from "../../src/daemon/daemon.ts";
import { TRAFFIC_DEFAULTS, TRAFFIC_LIMITS } from "../../src/lab/demo-traffic.ts";
import * as defaults from "../../src/cli/defaults.ts";
import { LAB_TRAFFIC_HELP } from "../../src/cli/verbs-lab.ts";
import { CliError, errorJson, exitCodeOf, healthOf, statusExitCode } from "../../src/cli/exit.ts";
import { ConfigError } from "../../src/config/issues.ts";
import { NftError } from "../../src/system/nft.ts";
import type { StatusJson } from "../../src/daemon/status.ts";
import { createLogger, journalWanted } from "../../src/daemon/log.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

test("the verbs' help shows the same defaults their owners use", () => {
  assert.equal(defaults.DEFAULT_CONFIG_PATH, DEFAULT_CONFIG_PATH);
  assert.equal(defaults.DEFAULT_API, DEFAULT_API);
  assert.equal(LAB_TRAFFIC_HELP.rate, String(TRAFFIC_DEFAULTS.rate));
  assert.equal(LAB_TRAFFIC_HELP.duration, `${TRAFFIC_DEFAULTS.durationMs / 60_000}m`);
  assert.equal(LAB_TRAFFIC_HELP.maxRate, TRAFFIC_LIMITS.maxRate);
});

test("the entry loads nothing but the precomputed help; the program only commander: every verb's implementation is a dynamic import", async () => {
  const outdir = mkdtempSync(join(tmpdir(), "nflb-split-"));
  try {
    const r = await build({
      entryPoints: [join(ROOT, "src/cli/main.ts")],
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "node",
      packages: "external",
      outdir,
      metafile: true,
      write: false,
      logLevel: "silent",
    });
    const outputs = r.metafile.outputs;
    // Everything reachable from a chunk by static imports is loaded with it.
    const closure = (start: string) => staticClosure(outputs, start);
    const entry = Object.keys(outputs).find((k) => outputs[k]?.entryPoint === "src/cli/main.ts");
    assert.ok(entry, "an entry chunk");
    // `nflb --help` loads this much.
    const first = closure(entry);
    assert.deepEqual([...first.externals], []);
    for (const i of first.inputs)
      assert.match(i, /^src\/cli\/(main|help-text)\.ts$/, `${i} loads for --help`);
    // Every other verb loads the program too.
    const program = Object.keys(outputs).find((k) => outputs[k]?.inputs["src/cli/program.ts"]);
    assert.ok(program, "a program chunk");
    const verbs = closure(program);
    assert.deepEqual([...verbs.externals].sort(), ["commander"]);
    for (const i of verbs.inputs)
      assert.match(
        i,
        /^(src\/cli\/(program|defaults|exit|help-width|verbs-\w+)\.ts|package\.json)$/,
        `${i} loads for every verb`,
      );
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
});

const base = (): StatusJson => ({
  uplinks: ["isp1", "isp2"].map((name) => ({
    name,
    interface: name,
    state: "up" as const,
    reason: "",
    since: null,
    weight: 1,
    effective_weight: 1,
    share: 0.5,
    rtt_ms: null,
    jitter_ms: null,
    loss: 0,
    connections: null,
    probed: true,
  })),
  services: [],
  cluster: null,
  applied_at: null,
  config_version: "x",
  config_file: "f",
  started_at: "t",
  last_reload_error: null,
  keeping_last_data_plane: false,
});

const backend = (state: "up" | "down" | "draining" | "maint") => ({
  address: "10.0.0.1:80",
  state,
  weight: 1,
  connections: 0,
  bytes_to_backend: null,
  bytes_from_backend: null,
  reason: "",
  since: null,
});

test("status exit codes: 0 all up, 1 degraded, 2 down", () => {
  const s = base();
  assert.deepEqual([healthOf(s), statusExitCode(s)], ["up", 0]);
  const u1 = s.uplinks[1];
  assert.ok(u1);
  u1.state = "disabled";
  assert.deepEqual([healthOf(s), statusExitCode(s)], ["degraded", 1]);
  const u0 = s.uplinks[0];
  assert.ok(u0);
  u0.state = "down";
  assert.deepEqual([healthOf(s), statusExitCode(s)], ["down", 2]);
  const keeping = { ...base(), keeping_last_data_plane: true };
  assert.equal(statusExitCode(keeping), 2, "every uplink down, the last data plane kept");

  const svc = (...states: ("up" | "down" | "draining" | "maint")[]) => ({
    name: "web",
    listen: "203.0.113.1:80",
    protocol: "tcp",
    backends: states.map(backend),
  });
  assert.equal(statusExitCode({ ...base(), services: [svc("up", "draining")] }), 0, "draining is deliberate");
  assert.equal(statusExitCode({ ...base(), services: [svc("up", "maint")] }), 1);
  assert.equal(statusExitCode({ ...base(), services: [svc("up", "down")] }), 1);
  const servicesOnly = { ...base(), uplinks: [] };
  assert.equal(statusExitCode({ ...servicesOnly, services: [svc("down", "down")] }), 2);
  assert.equal(statusExitCode({ ...servicesOnly, services: [svc("down", "up")] }), 1);
  assert.equal(statusExitCode({ ...servicesOnly, services: [svc("down"), svc("up")] }), 1);
});

test("error exit codes: ConfigError 2, CliError its own, anything else 1", () => {
  const ce = new ConfigError("f.yaml", [{ path: ["a"], message: "bad", line: 2 }]);
  assert.equal(exitCodeOf(ce), 2);
  assert.equal(exitCodeOf(new NftError("nft said no", "")), 1);
  assert.equal(exitCodeOf(new CliError("x", 2)), 2);
  assert.equal(exitCodeOf(new Error("bug")), 1);
  assert.deepEqual(errorJson(ce), {
    ok: false,
    exit: 2,
    error: ce.message,
    file: "f.yaml",
    issues: [{ path: ["a"], message: "bad", line: 2 }],
  });
});

test("journal: NFLB_LOG_FORMAT forces it; JOURNAL_STREAM only when it is stdout", () => {
  assert.equal(journalWanted({ NFLB_LOG_FORMAT: "journal" }), true);
  assert.equal(journalWanted({ NFLB_LOG_FORMAT: "json", JOURNAL_STREAM: "1:2" }), false);
  assert.equal(journalWanted({}), false);
  const dir = mkdtempSync(join(tmpdir(), "nflb-log-"));
  const fd = openSync(join(dir, "out"), "w");
  try {
    const st = fstatSync(fd);
    assert.equal(journalWanted({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd), true);
    assert.equal(journalWanted({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1}` }, fd), false);
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("journal lines start with the syslog priority of their level", () => {
  const lines: string[] = [];
  const log = createLogger({ write: (l: string) => void lines.push(l) }, "debug", true);
  log.warn({ uplink: "isp1", reason: "3 rounds lost" }, "uplink isp1 down");
  log.error("e");
  log.info("i");
  log.debug("d");
  assert.deepEqual(
    lines.map((l) => l.slice(0, 3)),
    ["<4>", "<3>", "<6>", "<7>"],
  );
  const warn = JSON.parse(lines[0]?.slice(3) ?? "") as Record<string, unknown>;
  assert.deepEqual([warn.level, warn.uplink, warn.reason], ["warn", "isp1", "3 rounds lost"]);
  const plain: string[] = [];
  createLogger({ write: (l: string) => void plain.push(l) }, "info", false).info("x");
  assert.match(plain[0] ?? "", /^\{"level":"info"/);
});

test("run --node NAME replaces cluster.node of every config the daemon loads", async () => {
  const { withNode } = await import("../../src/cli/actions-run.ts");
  const { parseConfigSource } = await import("../../src/config/load.ts");
  const loaded = parseConfigSource(
    "version: 1\ncluster: { name: web, node: node-a, vip: 192.0.2.2, interface: eth0 }\n",
  );
  const over = withNode(loaded, "node-b");
  assert.equal(over.config.cluster?.node, "node-b");
  assert.equal(over.text, loaded.text, "the config's version (a hash of its text) does not change");
  assert.equal(loaded.config.cluster?.node, "node-a", "the loaded config is not modified");
  assert.equal(withNode(loaded, undefined), loaded);
  const plain = parseConfigSource(
    "version: 1\nuplinks: { isp1: { interface: wan1, gateway: 100.64.1.1 } }\n",
  );
  assert.equal(withNode(plain, "node-b"), plain, "no cluster: nothing to override");
});

test("the status table: a backend's connections now and in total, maint coloured like draining", async () => {
  const { formatStatus } = await import("../../src/daemon/status-table.ts");
  const s = {
    ...base(),
    services: [
      {
        name: "web",
        listen: "203.0.113.1:80",
        protocol: "tcp",
        backends: [
          { ...backend("maint"), connections: 2, connections_total: 40, reason: "maint through the API" },
        ],
      },
    ],
  };
  const text = formatStatus(s, false);
  assert.match(text, /^BACKEND +STATE +WEIGHT +CONNS +TOTAL +BYTES TO\/FROM +REASON$/m);
  assert.match(text, /^10\.0\.0\.1:80 +maint +1 +2 +40 +- +maint through the API$/m);
  assert.ok(formatStatus(s, true).includes("\u001b[33mmaint"), "maint in yellow");
});
