// Packaging in contrib/: the Grafana dashboard speaks the contract's metric names; the systemd
// unit runs the daemon the way the contract says (ready when serving, `nflb reload`, fail-static on
// SIGTERM); the man page and shell completions know every verb the CLI has; the example config
// the package installs as /etc/nflb/nflb.yaml is a valid config once uncommented.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";

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

  test("runs the packaged daemon on the default config, ready when serving, reloads with nflb reload, stops fail-static", () => {
    assert.deepEqual(key("ExecStart"), ["/usr/bin/nflb run -c /etc/nflb/nflb.yaml"]);
    assert.deepEqual(key("Type"), ["notify"]);
    assert.deepEqual(key("NotifyAccess"), ["all"], "systemd-notify is a child of the daemon");
    assert.deepEqual(key("ExecReload"), ["/usr/bin/nflb reload -c /etc/nflb/nflb.yaml"]);
    assert.deepEqual(key("ExecStartPre"), [], "a late tunnel must not keep nflb from starting");
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
      writeFileSync(file, unit.replaceAll("/usr/bin/nflb", bin));
      // ... and that Documentation=man:nflb(1) is found: the page as the package installs it.
      mkdirSync(join(dir, "man", "man1"), { recursive: true });
      copyFileSync(
        fileURLToPath(new URL("../../contrib/man/nflb.1", import.meta.url)),
        join(dir, "man", "man1", "nflb.1"),
      );
      const env = { ...process.env, MANPATH: `${join(dir, "man")}:` };
      const r = await run("systemd-analyze", ["verify", file], { env }).catch((e: { stderr?: string }) => ({
        stderr: `failed: ${e.stderr ?? String(e)}`,
      }));
      assert.equal(r.stderr.trim(), "");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("example config installed as /etc/nflb/nflb.yaml", () => {
  const text = contrib("nflb.yaml");

  test("is all comments: nflb does nothing until the admin says what to balance", () => {
    for (const line of text.split("\n")) assert.ok(line === "" || line.startsWith("#"), line);
  });

  test("removing one # from every line gives a valid config with uplinks and a service", () => {
    const c = parseConfig(text.replace(/^#/gm, ""), "nflb.yaml");
    assert.ok(Object.keys(c.uplinks ?? {}).length >= 2);
    assert.ok(Object.keys(c.services ?? {}).length >= 1);
  });
});

describe("man page and shell completions", () => {
  const NFLB = fileURLToPath(new URL("../../bin/nflb", import.meta.url));
  const run = promisify(execFile);
  const man = contrib("man/nflb.1");
  const bash = contrib("completions/nflb.bash");
  const zsh = contrib("completions/_nflb");

  /** The commands `nflb [VERB] --help` lists, e.g. ["check", …, "lab up", …]. */
  async function verbs(): Promise<string[]> {
    const listed = async (argv: string[]) => {
      const { stdout } = await run(NFLB, [...argv, "--help"]);
      const section = stdout.split(/^Commands:$/m)[1] ?? "";
      return [...section.matchAll(/^ {2}([a-z][a-z-]*)/gm)]
        .map((m) => m[1] ?? "")
        .filter((v) => v !== "help");
    };
    const out: string[] = [];
    for (const v of await listed([])) {
      out.push(v);
      for (const sub of await listed([v])) out.push(`${v} ${sub}`);
    }
    return out;
  }

  test("every verb of the CLI is in the man page and in both completions", async () => {
    const all = await verbs();
    assert.ok(all.includes("check") && all.includes("lab up"), all.join(", "));
    const words = (s: string) => new Set(s.split(/[^A-Za-z0-9-]+/));
    for (const [name, text] of [
      ["nflb.1", man],
      ["nflb.bash", bash],
      ["_nflb", zsh],
    ] as const)
      for (const v of all)
        for (const w of v.split(" ")) assert.ok(words(text).has(w), `${v} missing in ${name}`);
  });

  test("the man page documents the exit statuses scripts rely on", () => {
    const exit = man.split(/^\.SH EXIT STATUS$/m)[1]?.split(/^\.SH /m)[0] ?? "";
    for (const code of ["0", "1", "2"]) assert.match(exit, new RegExp(`^\\.B ${code}$`, "m"));
    assert.match(exit, /degraded/);
    assert.match(exit, /no daemon answers/);
  });

  test("man accepts the page without warnings", async (t) => {
    const ok = await run("man", ["--version"]).then(
      () => true,
      () => false,
    );
    if (!ok) return t.skip("man not installed");
    const r = await run(
      "man",
      ["--warnings", "-l", fileURLToPath(new URL("../../contrib/man/nflb.1", import.meta.url))],
      {
        env: { ...process.env, MANWIDTH: "80", MANPAGER: "cat", PAGER: "cat" },
      },
    );
    assert.equal(r.stderr.trim(), "");
    assert.match(r.stdout, /EXIT STATUS/);
  });

  test("bash completes verbs, sub-verbs and uplink names from the config", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "nflb-compl-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const cfg = join(dir, "c.yaml");
    writeFileSync(cfg, "version: 1\nuplinks:\n  isp1:\n    interface: eth1\n  wan-b:\n    interface: eth2\n");
    const file = fileURLToPath(new URL("../../contrib/completions/nflb.bash", import.meta.url));
    // bash-completion's _init_completion, reduced to what _nflb uses.
    const stub =
      'complete() { :; }; _init_completion() { words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; cur=${words[cword]}; prev=${words[cword-1]}; }; _filedir() { :; }';
    /** COMPREPLY for `nflb WORDS…` with the cursor on the word marked "|" (default: the last word). */
    const complete = async (...words: string[]) => {
      const at = words.findIndex((w) => w.startsWith("|"));
      const cword = at < 0 ? words.length : at + 1;
      const argv = ["nflb", ...words.map((w) => w.replace(/^\|/, ""))];
      const script = `${stub}; . "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=${cword}; _nflb; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const { stdout } = await run("bash", ["-c", script, "bash", file, ...argv]);
      return stdout.split("\n").filter(Boolean).sort();
    };
    assert.deepEqual(await complete("ba"), ["backend"]);
    assert.deepEqual(await complete("uplink", ""), ["disable", "enable"]);
    assert.deepEqual(await complete("uplink", "disable", "|", "-c", cfg), ["isp1", "wan-b"]);
    assert.deepEqual(await complete("exec", "-c", cfg, "--via", "w"), ["wan-b"]);
    assert.deepEqual(await complete("backend", "drain", "web", "1.2.3.4:80", "--w"), ["--wait"]);
  });
});
