// Packaging in contrib/: the Grafana dashboard speaks the contract's metric names, and the systemd
// unit runs the daemon the way the contract says (reload on SIGHUP, fail-static on SIGTERM).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, test } from "node:test";

const contrib = (f: string) => readFileSync(new URL(`../../contrib/${f}`, import.meta.url), "utf8");

/** INTERFACE.md's metrics table: name → labels. */
const CONTRACT: Record<string, string[]> = {
  nflb_uplink_up: ["uplink"],
  nflb_uplink_rtt_seconds: ["uplink"],
  nflb_uplink_loss_ratio: ["uplink"],
  nflb_uplink_share: ["uplink"],
  nflb_uplink_connections_total: ["uplink"],
  nflb_uplink_bytes_total: ["uplink", "direction"],
  nflb_uplink_transitions_total: ["uplink", "to"],
  nflb_backend_up: ["service", "backend"],
  nflb_backend_connections_total: ["service", "backend"],
  nflb_cluster_buckets_owned: ["node"],
  nflb_apply_seconds: ["kind"],
};

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; refId: string }[];
}

describe("Grafana dashboard", () => {
  const dash = JSON.parse(contrib("grafana-nflb.json")) as {
    uid: string;
    panels: Panel[];
    annotations: { list: { expr: string }[] };
  };
  const exprs = [
    ...dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
    ...dash.annotations.list.map((a) => a.expr),
  ];
  const metricsIn = (e: string) => [...e.matchAll(/\bnflb_[a-z_]+/g)].map((m) => m[0]);
  const base = (m: string) => m.replace(/_(bucket|count|sum)$/, "");

  test("charts every metric of the contract", () => {
    const used = new Set(exprs.flatMap(metricsIn).map(base));
    for (const m of Object.keys(CONTRACT)) assert.ok(used.has(m), `no panel shows ${m}`);
  });

  test("uses no metric or label the contract does not name", () => {
    for (const e of exprs) {
      const ms = metricsIn(e);
      assert.ok(ms.length > 0, e);
      const known = new Set(["instance", "le", ...ms.flatMap((m) => CONTRACT[base(m)] ?? [])]);
      for (const m of ms) assert.ok(CONTRACT[base(m)], `${m} in ${e}`);
      for (const by of e.matchAll(/by \(([^)]*)\)/g))
        for (const l of (by[1] ?? "").split(",").map((s) => s.trim()))
          assert.ok(known.has(l), `label ${l} in ${e}`);
      for (const sel of e.matchAll(/([a-z_]+)=~?"/g))
        assert.ok(known.has(sel[1] ?? ""), `label ${sel[1]} in ${e}`);
    }
  });

  test("panels have unique ids, and no two overlap on the grid", () => {
    const ids = dash.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    const cells = new Set<string>();
    for (const p of dash.panels) {
      const g = p.gridPos;
      assert.ok(g.x + g.w <= 24, `${p.title} is wider than the grid`);
      for (let y = g.y; y < g.y + g.h; y++)
        for (let x = g.x; x < g.x + g.w; x++) {
          const k = `${x},${y}`;
          assert.ok(!cells.has(k), `${p.title} overlaps another panel at ${k}`);
          cells.add(k);
        }
    }
    for (const p of dash.panels.filter((q) => q.type !== "row"))
      assert.ok((p.targets ?? []).length > 0, `${p.title} has no query`);
  });
});

describe("systemd unit", () => {
  const unit = contrib("nflb.service");
  const key = (k: string) => [...unit.matchAll(new RegExp(`^${k}=(.*)$`, "gm"))].map((m) => m[1] ?? "");

  test("runs the daemon on the default config, reloads on SIGHUP, stops fail-static on SIGTERM", () => {
    assert.match(key("ExecStart")[0] ?? "", /\/bin\/nflb run -c \/etc\/nflb\/nflb\.yaml$/);
    assert.deepEqual(key("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert.deepEqual(key("KillSignal"), ["SIGTERM"]);
    assert.deepEqual(key("Restart"), ["on-failure"]);
    assert.deepEqual(key("RuntimeDirectoryPreserve"), ["yes"], "nflb down needs the state file after a stop");
  });

  test("is hardened but keeps the capabilities nflb needs", () => {
    const caps = key("CapabilityBoundingSet").join(" ").split(/\s+/);
    for (const c of ["CAP_NET_ADMIN", "CAP_NET_RAW"]) assert.ok(caps.includes(c), c);
    assert.ok(!caps.includes("CAP_SYS_ADMIN"));
    assert.deepEqual(key("ProtectSystem"), ["strict"]);
    assert.deepEqual(key("NoNewPrivileges"), ["yes"]);
    assert.deepEqual(key("ProtectKernelTunables"), [], "nflb writes net sysctls");
    assert.deepEqual(key("MemoryDenyWriteExecute"), [], "Node's JIT");
  });

  test("systemd-analyze verify accepts it", async (t) => {
    const run = promisify(execFile);
    const ok = await run("systemd-analyze", ["--version"]).then(
      () => true,
      () => false,
    );
    if (!ok) return t.skip("systemd-analyze not installed");
    const dir = mkdtempSync(join(tmpdir(), "nflb-unit-"));
    try {
      // verify insists that ExecStart's binary exists: point it at this checkout's.
      const bin = fileURLToPath(new URL("../../bin/nflb", import.meta.url));
      const file = join(dir, "nflb.service");
      writeFileSync(file, unit.replaceAll("/opt/nflb/bin/nflb", bin));
      const r = await run("systemd-analyze", ["verify", file]).catch((e: { stderr?: string }) => ({
        stderr: `failed: ${e.stderr ?? String(e)}`,
      }));
      assert.equal(r.stderr.trim(), "");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
