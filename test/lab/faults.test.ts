// Issue 14, fault injection (bounded): `nflb apply` killed with SIGKILL at spread-out random
// points leaves the old data plane or the new one (never a foreign or half nft table), the next
// `nflb apply` takes over the lock it left and converges, and `nflb down` restores the host
// exactly. And one lock: `nflb apply`/`down` while `nflb run` holds the namespace are refused.
import assert from "node:assert/strict";
import { readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import { DaemonFixture, labConfig } from "../../testkit/daemon-harness.ts";
import { NFLB, snapshot } from "./support/nflb.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

/** Kill points; NFLB_FAULT_POINTS raises it (at most 100) for a longer run. */
const POINTS = Math.min(100, Math.max(1, Number(process.env.NFLB_FAULT_POINTS) || 20));

type Snap = Record<string, string>;

/** Counters move with stray packets; everything else must match byte for byte. */
function normalize(s: Snap): Snap {
  const out: Snap = {};
  for (const [k, v] of Object.entries(s)) out[k] = v.replace(/packets \d+ bytes \d+/g, "packets 0 bytes 0");
  return out;
}

describe("faults: nflb apply killed at random points", { skip, timeout: 900_000 }, () => {
  const lab = new UplinkLab({ uplinks: 2, v6: false });
  let fileA = "";
  let fileB = "";
  // The tests run `nflb apply` themselves; the last one starts `nflb run` (fx.file) when it needs it.
  const fx = new DaemonFixture(lab, () => labConfig(lab), {
    settle: true,
    api: "127.0.0.1:9110",
    start: false,
    ready: null,
    prepare: async () => {
      const [u1, u2] = lab.uplinks;
      if (!u1 || !u2) throw new Error("two uplinks expected");
      // A and B differ in the nft table and in the policy routing (B drops isp2, adds a rule).
      fileA = join(fx.dir, "a.yaml");
      fileB = join(fx.dir, "b.yaml");
      await writeFile(fileA, labConfig(lab));
      await writeFile(
        fileB,
        `version: 1
uplinks:
  isp1: { interface: ${u1.wanIf}, gateway: ${u1.gateway4}, weight: 3 }
balance:
  from: [lan0]
rules:
  - { name: docs, destination: [198.51.100.0/24], via: [isp1] }
`,
      );
    },
  });
  // In the router's namespace, with the fixture's state directory (the daemon's too).
  const nflb = (args: string[], timeoutMs = 30_000) => fx.cli(args, timeoutMs);
  const nflbOk = async (args: string[]) => {
    const r = await nflb(args);
    if (r.code !== 0) throw new Error(`nflb ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const snap = async () => normalize(await snapshot(lab, "router"));
  /** The namespace's net.* sysctls, by the key as the state file writes it (with "/"). */
  const sysctls = async (): Promise<Map<string, string>> => {
    const r = await lab.exec("router", ["sysctl", "-a", "--pattern", "^net\\."], { timeoutMs: 15_000 });
    const m = new Map<string, string>();
    for (const line of r.stdout.split("\n")) {
      const i = line.indexOf(" = ");
      if (i > 0) m.set(line.slice(0, i).replaceAll(".", "/"), line.slice(i + 3));
    }
    return m;
  };

  before(() => fx.up(), { timeout: 120_000 });
  after(() => fx.down());

  test(
    `kill -9 at ${POINTS} points: old or new nft table; the next apply converges; down restores the host`,
    {
      timeout: 600_000,
    },
    async () => {
      const pristine = await snap();
      const pristineSys = await sysctls();
      await nflbOk(["apply", "-c", fileB]);
      const S_B = await snap();
      const stateFile = (await readdir(fx.dir)).find((f) => /^netns-\d+\.json$/.test(f));
      assert.ok(stateFile, "the state file is in NFLB_STATE_DIR");
      const touched = Object.keys(
        (JSON.parse(await readFile(join(fx.dir, stateFile), "utf8")) as { sysctls: Record<string, string> })
          .sysctls,
      );
      await nflbOk(["apply", "-c", fileA]);
      const S_A = await snap();
      for (const k of Object.keys(JSON.parse(await readFile(join(fx.dir, stateFile), "utf8")).sysctls))
        if (!touched.includes(k)) touched.push(k);
      assert.notDeepEqual(S_A.ruleset, S_B.ruleset);
      assert.notDeepEqual(S_A.rules4, S_B.rules4, "the two configs differ in ip rules too");

      // An apply rewrites the state file just before it changes the kernel: the moment that file
      // is replaced (a new inode), the work starts. Wait for it, in 2 ms steps, bounded.
      const statePath = join(fx.dir, stateFile);
      const inode = async () => (await stat(statePath).catch(() => null))?.ino ?? 0;
      const untilStateWritten = async (from: number, p: { child: { exitCode: number | null } }) => {
        const deadline = Date.now() + 15_000;
        while ((await inode()) === from && p.child.exitCode === null && Date.now() < deadline) await sleep(2);
      };
      const startB = () =>
        lab.spawn("router", ["env", `NFLB_STATE_DIR=${fx.dir}`, NFLB, "apply", "-c", fileB]);
      const waitExit = async (p: { exited: Promise<number> }) => {
        // Lab processes are unref'd: a timer keeps this test's loop alive while it waits.
        const keepAlive = setTimeout(() => undefined, 30_000);
        return p.exited.finally(() => clearTimeout(keepAlive));
      };

      // How long an A → B apply takes from spawn to exit, and from the state file write to exit.
      let total = 0;
      let tail = 0;
      for (let i = 0; i < 2; i++) {
        const t0 = performance.now();
        const ino = await inode();
        const p = startB();
        await untilStateWritten(ino, p);
        const t1 = performance.now();
        assert.equal(await waitExit(p), 0, p.stderr());
        total += performance.now() - t0;
        tail += performance.now() - t1;
        await nflbOk(["apply", "-c", fileA]);
      }
      const span = total / 2;
      const workSpan = tail / 2;

      const outcomes: string[] = [];
      for (let i = 0; i < POINTS; i++) {
        assert.deepEqual(await snap(), S_A, `before point ${i}: state A`);
        // Half the points spread over the whole run (mostly Node starting and the config being
        // read), half over the part that changes the kernel, from the state file write on.
        const half = Math.ceil(POINTS / 2);
        const ino = await inode();
        const p = startB();
        let delay: number;
        if (i < half) {
          delay = (span * (i + Math.random())) / half;
          await sleep(delay);
        } else {
          await untilStateWritten(ino, p);
          delay = (workSpan * 1.1 * (i - half + Math.random())) / (POINTS - half);
          await sleep(delay);
          delay = -delay; // printed as "state written + N ms"
        }
        try {
          process.kill(p.pid, "SIGKILL");
        } catch {
          // Finished before the kill.
        }
        const code = await waitExit(p);
        const now = await snap();
        const nft = now.ruleset === S_A.ruleset ? "old" : now.ruleset === S_B.ruleset ? "new" : "neither";
        const rules = (k: "rules4" | "routes4") =>
          now[k] === S_A[k] ? "old" : now[k] === S_B[k] ? "new" : "between";
        const outcome = `${delay < 0 ? `state written + ${Math.round(-delay)}` : Math.round(delay)} ms, exit ${code}: nft ${nft}, rules ${rules("rules4")}, routes ${rules("routes4")}`;
        outcomes.push(outcome);
        assert.notEqual(nft, "neither", `point ${i}: ${outcome}\n${now.ruleset}`);
        if (code === 0) assert.deepEqual(now, S_B, `point ${i}: a finished apply installed B`);
        // The rules and routes the installed table uses are all there (the new ones go in before
        // the table switches, the old ones out after it).
        const needed = nft === "old" ? S_A : S_B;
        for (const k of ["rules4", "routes4"] as const) {
          const have = new Set((now[k] ?? "").split("\n"));
          for (const line of (needed[k] ?? "").split("\n"))
            assert.ok(have.has(line), `point ${i}: nft ${nft} but ${k} lacks: ${line}\n${outcome}`);
        }
        // Routing only ever moves between the two: nothing foreign.
        for (const k of ["rules4", "routes4"] as const) {
          const allowed = new Set([...(S_A[k] ?? "").split("\n"), ...(S_B[k] ?? "").split("\n")]);
          for (const line of (now[k] ?? "").split("\n"))
            assert.ok(allowed.has(line), `point ${i}: ${k} has a line of neither config: ${line}`);
        }
        // The killed apply's lock is stale: the next apply takes it and converges to A.
        await nflbOk(["apply", "-c", fileA]);
      }
      const killed = outcomes.filter((o) => !/exit 0:/.test(o)).length;
      process.stdout.write(
        `# ${POINTS} points over ${Math.round(span)} ms (kernel work ${Math.round(workSpan)} ms), ${killed} killed mid-run\n`,
      );
      for (const o of outcomes) process.stdout.write(`#   ${o}\n`);
      assert.ok(killed >= POINTS / 4, "most points hit a running apply");

      const applied = await sysctls();
      await nflbOk(["down"]);
      const after = await snap();
      assert.deepEqual(after, pristine, "down restored nft, ip rules and routes exactly");
      const restored = await sysctls();
      assert.ok(
        touched.some((k) => applied.get(k) !== pristineSys.get(k)),
        `apply changed some sysctl (${touched.join(", ")})`,
      );
      for (const k of touched) assert.equal(restored.get(k), pristineSys.get(k), `sysctl ${k} restored`);
      assert.deepEqual(
        (await readdir(fx.dir)).filter((f) => f.endsWith(".tmp") || f.endsWith(".lock")),
        [],
        "no lock or temp file left behind",
      );
    },
  );

  test(
    "nflb exec holds the lock only while it sets up: execs run side by side, apply is not held up",
    {
      timeout: 120_000,
    },
    async () => {
      const pristine = await snap();
      await nflbOk(["apply", "-c", fileA]);
      const long = lab.spawn("router", [
        "env",
        `NFLB_STATE_DIR=${fx.dir}`,
        NFLB,
        "exec",
        "--via",
        "isp1",
        "-c",
        fileA,
        "--",
        "sleep",
        "12",
      ]);
      const keepAlive = setTimeout(() => undefined, 30_000);
      try {
        await sleep(2500);
        const other = await nflb(["exec", "--via", "isp2", "-c", fileA, "--", "true"]);
        assert.equal(other.code, 0, other.stderr);
        await nflbOk(["apply", "-c", fileA]);
        assert.equal(long.child.exitCode, null, "both finished while the first exec's command still ran");
        assert.equal(await long.exited, 0, long.stderr());
      } finally {
        clearTimeout(keepAlive);
        await long.stop(2000);
        await nflbOk(["down"]);
      }
      assert.deepEqual(await snap(), pristine);
    },
  );

  test(
    "while nflb run holds the namespace, apply and down are refused naming its pid",
    {
      timeout: 120_000,
    },
    async () => {
      const pristine = await snap();
      // The harness keeps the daemon's state next to its config: the same dir as ours.
      const daemon = await fx.start(null);
      try {
        for (const args of [["apply", "-c", fileB], ["down"]]) {
          const t0 = Date.now();
          const r = await nflb(args);
          assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
          assert.match(r.stderr, new RegExp(`nflb run \\(pid ${daemon.proc.pid}, since `));
          assert.match(r.stderr, /nflb reload/);
          assert.ok(Date.now() - t0 < 10_000, "refused at once, not after a wait");
        }
        const second = await nflb(["run", "-c", fx.file, "--api", "127.0.0.1:9111"]);
        assert.equal(second.code, 1);
        assert.match(second.stderr, /one daemon per namespace/);
        assert.ok(daemon.proc.child.exitCode === null, "the daemon still runs");
      } finally {
        assert.equal(await fx.stop(), 0);
      }
      // SIGTERM leaves the data plane (fail-static) and releases the lock: down now works.
      await nflbOk(["down"]);
      assert.deepEqual(await snap(), pristine);
    },
  );
});
