// Issue 14, fault injection into a running daemon (`nflb run` in the lab router, two uplinks):
// - `nft` failing its applies (a fake `nft` first in the daemon's PATH refuses every `nft -f` while
//   a flag file exists, else runs the real one): the old data plane keeps serving, status says why,
//   the daemon retries and converges once nft works again;
// - fping crashing in a loop, printing garbage, hanging (SIGSTOP): restarted with backoff, the
//   uplinks do not flap, status says why (uplinks[].probe_error);
// - the daemon killed with SIGKILL in the middle of a reload: the data plane is the old plan or the
//   new one (`nflb plan --diff` against each), a new daemon converges, `nflb down` restores the host.
// Every test keeps short LAN connections going (a batch of 4 every 100 ms) and counts them: none
// may fail. Needs root.
import assert from "node:assert/strict";
import { chmod, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import {
  API_PORT,
  DaemonFixture,
  NFLB,
  failures,
  http,
  labConfig,
  lanBatch,
  sleep,
  startPoller,
  status,
  waitStatus,
  type Batch,
  type Poller,
} from "../../testkit/daemon-harness.ts";
import { snapshot } from "./support/nflb.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

/** SIGKILL points during a reload; NFLB_FAULT_POINTS raises it (at most 50). */
const POINTS = Math.min(50, Math.max(1, Number(process.env.NFLB_FAULT_POINTS) || 6));

/**
 * A fake `nft`: refuses every `nft -f` while DIR/nft.fail exists; otherwise the real nft. The
 * daemon's long-lived `nft -i` session (src/system/nft-session.ts) gets the real one behind a
 * filter that, while DIR/nft.fail exists, answers each transaction (an `include` line) with the
 * same error instead of passing it on; its end marker still reaches nft, so the error arrives
 * before the marker's, as a real refusal's would.
 */
const fakeNft = (dir: string, real: string) => `#!/bin/sh
for a in "$@"; do
  if [ "$a" = "-i" ]; then
    while IFS= read -r line; do
      case "$line" in
        include*)
          if [ -e ${dir}/nft.fail ]; then
            echo "Error: injected failure (nflb fault test)" >&2
            continue
          fi ;;
      esac
      printf '%s\\n' "$line"
    done | ${real} "$@"
    exit $?
  fi
done
if [ -e ${dir}/nft.fail ]; then
  for a in "$@"; do
    if [ "$a" = "-f" ]; then
      cat >/dev/null
      echo "Error: injected failure (nflb fault test)" >&2
      exit 1
    fi
  done
fi
exec ${real} "$@"
`;

/** A fake `fping`: DIR/fping.mode says crash, garbage or nothing (the real fping). */
const fakeFping = (dir: string, real: string) => `#!/bin/sh
mode=$(cat ${dir}/fping.mode 2>/dev/null)
case "$mode" in
  crash)
    echo "fping: injected crash" >&2
    exit 3 ;;
  garbage)
    i=0
    while [ $i -lt 600 ]; do echo "#garbage# $i"; i=$((i + 1)); sleep 0.1; done
    exit 0 ;;
esac
exec ${real} "$@"
`;

/** The processes whose parent is `ppid` and whose name is `comm` (from /proc, bounded). */
async function children(ppid: number, comm: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const stat = await readFile(`/proc/${d}/stat`, "utf8").catch(() => "");
    const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
    if (m && m[1] === comm && Number(m[2]) === ppid) out.push(Number(d));
  }
  return out;
}

const kill = (pid: number, sig: NodeJS.Signals) => {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
};

describe("faults in a running daemon", { skip, timeout: 600_000 }, () => {
  const lab = new UplinkLab({ uplinks: 2, v6: false });
  let fake = "";
  const env = () => ({ PATH: `${fake}:${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}` });
  const local = (path: string) => `http://127.0.0.1:${API_PORT}${path}`;
  const via = (n: number) => `inet ${lab.uplink(n).router4}`;
  const config = (o: { weights?: number[] } = {}) =>
    labConfig(lab, { method: "round-robin", interval: "500ms", ...o });

  /** One batch of 24 connections: which uplinks carried them (all must succeed). */
  const batch = async () => Object.keys(await lanBatch(lab, 1500)).sort();

  const poll = (durationMs: number): Promise<Poller> =>
    startPoller(lab, { durationMs, batch: 4, everyMs: 100, timeoutMs: 1500 });

  /** Every connection of the poller succeeded, and there were enough of them to mean something. */
  const assertNoLoss = (batches: Batch[], what: string, min = 20) => {
    const bad = failures(batches, 0);
    const total = batches.reduce((a, b) => a + b.ok + b.failed, 0);
    assert.deepEqual(bad, [], `${what}: failed connections`);
    assert.ok(batches.length >= min, `${what}: only ${batches.length} batches (${total} connections)`);
    return total;
  };

  const transitions = () =>
    (fx.daemon?.logs() ?? []).filter((l) => /^uplink \S+ (up|down)$/.test(String(l["msg"])));

  const fx = new DaemonFixture(lab, () => config(), {
    settle: true,
    env,
    // Fakes of nft and fping that run the real ones until a test says otherwise.
    prepare: async () => {
      fake = join(fx.dir, "bin");
      await mkdir(fake);
      await writeFile(join(fake, "nft"), fakeNft(fake, "/usr/sbin/nft"));
      await writeFile(join(fake, "fping"), fakeFping(fake, "/usr/bin/fping"));
      await chmod(join(fake, "nft"), 0o755);
      await chmod(join(fake, "fping"), 0o755);
    },
  });
  before(() => fx.up(), { timeout: 120_000 });
  after(() => fx.down(), { timeout: 60_000 });

  test("nft refuses the applies: the old data plane serves, status says why, retries converge", async () => {
    const poller = await poll(60_000);
    assert.deepEqual(await batch(), [via(1), via(2)]);
    const failedBefore = (fx.daemon?.logs() ?? []).filter((l) => l["msg"] === "reconcile failed; will retry");
    await writeFile(join(fake, "nft.fail"), "");
    const t0 = Date.now();
    // Disabling isp2 needs a change to the kernel: it fails.
    const answer = await http(lab, "router", "POST", local("/api/v1/uplinks/isp2/disable"));
    const s = await waitStatus(lab, (x) => !!x.last_apply_error, 10_000, "the failed apply reported");
    assert.match(s.last_apply_error ?? "", /injected failure/);
    assert.deepEqual(await batch(), [via(1), via(2)], "the old data plane (both uplinks) still serves");
    // It retries, with backoff (1 s, 2 s, …): at least two more failures within ~5 s.
    await sleep(5000);
    const failed = (fx.daemon?.logs() ?? []).filter((l) => l["msg"] === "reconcile failed; will retry");
    assert.ok(
      failed.length - failedBefore.length >= 3,
      `${failed.length - failedBefore.length} failures logged`,
    );
    await rm(join(fake, "nft.fail"));
    const healed = await waitStatus(
      lab,
      (x) => x.last_apply_error === null && x.uplinks[1]?.share === 0,
      20_000,
      "a retry applied the change",
    );
    assert.equal(healed.uplinks[1]?.state, "disabled");
    assert.deepEqual(await batch(), [via(1)], "isp2 disabled once nft works");
    process.stdout.write(
      `# nft failing: API answered ${answer.code}; healed ${Date.now() - t0} ms after the first failure\n`,
    );
    assert.equal((await http(lab, "router", "POST", local("/api/v1/uplinks/isp2/enable"))).code, 200);
    assert.deepEqual(await batch(), [via(1), via(2)]);
    const n = assertNoLoss(await poller.stop(), "nft failing");
    process.stdout.write(`# nft failing: ${n} connections, none failed\n`);
  });

  for (const fault of ["crash", "garbage", "hang"] as const)
    test(`fping ${fault === "hang" ? "hanging (SIGSTOP)" : fault === "crash" ? "crashing in a loop" : "printing garbage"}: restarted with backoff, no flap, status says why`, async () => {
      const pid = fx.daemon?.proc.pid ?? 0;
      const poller = await poll(60_000);
      const flapsBefore = transitions().length;
      const restartLines = () =>
        (fx.daemon?.logs() ?? []).filter((l) => /restarting in \d+ ms/.test(String(l["msg"]))).length;
      const restartsBefore = restartLines();
      const first = await children(pid, "fping");
      assert.ok(first.length >= 2, `an fping per uplink: ${first.join(",")}`);
      if (fault === "hang") {
        for (const p of first) kill(p, "SIGSTOP");
      } else {
        await writeFile(join(fake, "fping.mode"), fault);
        for (const p of first) kill(p, "SIGKILL");
      }
      const why = {
        crash: /fping exited 3: fping: injected crash/,
        garbage: /unreadable line/,
        hang: /printed nothing/,
      }[fault];
      // (The first restart may still name our own SIGKILL.)
      await waitStatus(
        lab,
        (x) => x.uplinks.every((u) => why.test(u.probe_error ?? "")),
        20_000,
        `every uplink's probe_error matching ${why}`,
      );
      // Let it go on failing for a while (crash/garbage: several restarts with growing delays).
      await sleep(fault === "hang" ? 2000 : 12_000);
      const restarts = restartLines() - restartsBefore;
      const st = await status(lab);
      assert.ok(
        st.uplinks.every((u) => u.state === "up"),
        JSON.stringify(st.uplinks),
      );
      assert.deepEqual(await batch(), [via(1), via(2)]);
      await rm(join(fake, "fping.mode"), { force: true });
      await waitStatus(lab, (x) => x.uplinks.every((u) => !u.probe_error), 40_000, "probing again");
      for (const p of first) kill(p, "SIGCONT");
      assert.equal(transitions().length, flapsBefore, "no uplink went down or up");
      const n = assertNoLoss(await poller.stop(), `fping ${fault}`);
      process.stdout.write(`# fping ${fault}: ${restarts} restarts logged, ${n} connections, none failed\n`);
    });

  test(`the daemon killed (SIGKILL) at ${POINTS} points of a reload: old or new plan, never half; restart converges; down restores`, async () => {
    // The host as it was before any nflb: what `down` must bring back at the end.
    await fx.stop();
    const r0 = await lab.exec("router", ["env", `NFLB_STATE_DIR=${fx.dir}`, NFLB, "down"], {
      timeoutMs: 30_000,
    });
    assert.equal(r0.code, 0, r0.stderr);
    const pristine = await snapshot(lab, "router");
    const fileA = join(fx.dir, "a.yaml");
    const fileB = join(fx.dir, "b.yaml");
    await writeFile(fileA, config());
    await writeFile(
      fileB,
      config({ weights: [3, 1] }) +
        "rules:\n  - { name: docs, destination: [198.51.100.0/24], via: [isp1] }\n",
    );
    const same = async (f: string) => {
      const r = await lab.exec(
        "router",
        ["env", `NFLB_STATE_DIR=${fx.dir}`, NFLB, "plan", "--diff", "--json", "-c", f],
        {
          timeoutMs: 30_000,
        },
      );
      return (JSON.parse(r.stdout) as { same?: boolean }).same === true;
    };
    const outcomes: string[] = [];
    // How long a reload takes, SIGHUP to "config reloaded" (measured once).
    await fx.write(await readFile(fileA, "utf8"));
    let daemon = await fx.start();
    // From here on the data plane is never taken away: not one connection may fail.
    const poller = await poll(POINTS * 20_000 + 20_000);
    await fx.write(await readFile(fileB, "utf8"));
    let t = Date.now();
    process.kill(daemon.proc.pid, "SIGHUP");
    await daemon.proc.waitForLine(/"msg":"config reloaded"/, 15_000);
    const span = Date.now() - t;
    for (let i = 0; i < POINTS; i++) {
      // Back to A with a fresh daemon (it adopts whatever the last one left), then reload to B and
      // kill it at a point spread over the reload.
      await fx.stop();
      await fx.write(await readFile(fileA, "utf8"));
      daemon = await fx.start();
      assert.ok(await same(fileA), `point ${i}: the daemon runs A`);
      await fx.write(await readFile(fileB, "utf8"));
      const delay = Math.round((span * 1.5 * (i + Math.random())) / POINTS);
      t = Date.now();
      process.kill(daemon.proc.pid, "SIGHUP");
      await sleep(delay);
      kill(daemon.proc.pid, "SIGKILL");
      await daemon.proc.exited;
      const fpings = await children(daemon.proc.pid, "fping");
      const a = await same(fileA);
      const b = await same(fileB);
      outcomes.push(`+${delay} ms: ${a ? "old" : b ? "new" : "NEITHER"}`);
      assert.ok(a || b, `point ${i} (+${delay} ms of ${span}): the data plane is neither A nor B`);
      // Its fping helpers die with it (their output pipe is gone) or are orphans: none may stay.
      for (const p of fpings) kill(p, "SIGKILL");
      // A new daemon with B converges (it takes over the dead one's lock).
      daemon = await fx.start();
      assert.ok(await same(fileB), `point ${i}: the restarted daemon converged to B`);
    }
    await fx.stop();
    const n = assertNoLoss(await poller.stop(), "daemon killed mid-reload");
    process.stdout.write(
      `# reload ${span} ms; ${n} connections, none failed; kills: ${outcomes.join(", ")}\n`,
    );
    const r = await lab.exec("router", ["env", `NFLB_STATE_DIR=${fx.dir}`, NFLB, "down"], {
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const norm = (x: Record<string, string>) =>
      JSON.stringify(x).replace(/packets \d+ bytes \d+/g, "packets 0 bytes 0");
    assert.equal(norm(await snapshot(lab, "router")), norm(pristine), "down restored the host exactly");
    // The daemon's own state too: no lock or temp file left behind.
    assert.deepEqual(
      (await readdir(fx.dir)).filter((f) => f.endsWith(".tmp") || f.endsWith(".lock")),
      [],
    );
  });
});
