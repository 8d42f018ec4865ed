// Issue 14, the soak in CI size: `nflb run` on the lab router with three uplinks under steady,
// bounded LAN traffic (a batch of 5 short connections every 50 ms, ~100/s) while isp3's carrier
// flaps, isp2 is disabled and enabled through the API, and the config is reloaded (SIGHUP,
// alternating weights) every 10 s. It must show: no failed connection outside the windows of the
// faults themselves (a flap or a toggle, 1.5 s each, plus the connection timeout before it), no
// leaked processes or file descriptors (the daemon's children and /proc/PID/fd at start vs end),
// RSS bounded, and at the end the data plane equal to the plan (`nflb plan --diff` empty).
//
// NFLB_SOAK_SECONDS sets the length (default 75 s); figures go to stdout as `# soak: …` lines
// (bench/RESULTS.md records a 30-minute run). Needs root.
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import {
  API_PORT,
  NFLB,
  DaemonFixture,
  allUp,
  http,
  labConfig,
  sleep,
  startPoller,
  waitStatus,
  type Batch,
} from "../../testkit/daemon-harness.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;
const SECONDS = Math.min(24 * 3600, Math.max(20, Number(process.env.NFLB_SOAK_SECONDS) || 75));
/** A connection that does not answer within this long counts as failed. */
const CONN_TIMEOUT_MS = 1500;
const WINDOW_MS = 1500;

interface ProcFigures {
  rssKiB: number;
  fds: number;
  children: string[];
}

/** RSS, open file descriptors and child processes (name, sorted) of `pid`, from /proc. */
async function figures(pid: number): Promise<ProcFigures> {
  const st = await readFile(`/proc/${pid}/status`, "utf8");
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? 0);
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  const children: string[] = [];
  for (const d of await readdir("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const stat = await readFile(`/proc/${d}/stat`, "utf8").catch(() => "");
    const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
    if (m && Number(m[2]) === pid) children.push(m[1] ?? "");
  }
  return { rssKiB, fds, children: children.sort() };
}

describe(
  `soak: ${SECONDS} s of flaps, toggles and reloads under traffic`,
  { skip, timeout: (SECONDS + 240) * 1000 },
  () => {
    const lab = new UplinkLab({ uplinks: 3, v6: false });
    const local = (path: string) => `http://127.0.0.1:${API_PORT}${path}`;
    const configs = [
      labConfig(lab, { interval: "500ms" }),
      labConfig(lab, { interval: "500ms", weights: [2, 1, 1] }),
    ];

    const fx = new DaemonFixture(lab, () => configs[0] ?? "", {
      settle: true,
      ready: { ok: allUp, timeoutMs: 20_000, what: "every uplink up" },
    });

    before(() => fx.up(), { timeout: 120_000 });
    after(() => fx.down(), { timeout: 60_000 });

    test(
      "no failure outside fault windows, nothing leaks, RSS bounded, the data plane is the plan",
      { timeout: (SECONDS + 180) * 1000 },
      async () => {
        const d = fx.daemon;
        assert.ok(d);
        const pid = d.proc.pid;
        const poller = await startPoller(lab, {
          durationMs: SECONDS * 1000 + 10_000,
          batch: 5,
          everyMs: 50,
          timeoutMs: CONN_TIMEOUT_MS,
        });
        // The poller's output is kept as a 64 KiB tail (~30 s of batches): collect as we go.
        const seen = new Map<number, Batch>();
        const refused = new Set<string>();
        const collect = () => {
          for (const b of poller.batches()) seen.set(b.t, b);
          for (const l of d.logs())
            if (String(l["msg"]).startsWith("reload refused")) refused.add(String(l["time"]));
        };
        // A few seconds of traffic first: the start figures are those of a daemon at work.
        await sleep(5000);
        const start = await figures(pid);
        const t0 = Date.now();
        const windows: [number, number][] = [];
        let flaps = 0;
        let toggles = 0;
        let reloads = 0;
        let reloadErrors = 0;
        let next = { flap: t0 + 3000, toggle: t0 + 5000, reload: t0 + 10_000 };
        let carrier = true;
        let disabled = false;
        while (Date.now() - t0 < SECONDS * 1000) {
          collect();
          const now = Date.now();
          if (now >= next.flap) {
            // isp3's carrier goes away for 3 s, every 8 s.
            windows.push([now, now + WINDOW_MS]);
            if (carrier) await lab.carrierDown(3);
            else await lab.carrierUp(3);
            if (!carrier) flaps++;
            carrier = !carrier;
            next = { ...next, flap: now + (carrier ? 5000 : 3000) };
          } else if (now >= next.toggle) {
            windows.push([now, now + WINDOW_MS]);
            const r = await http(
              lab,
              "router",
              "POST",
              local(`/api/v1/uplinks/isp2/${disabled ? "enable" : "disable"}`),
            );
            assert.equal(r.code, 200, r.body);
            disabled = !disabled;
            toggles++;
            next = { ...next, toggle: now + 7000 };
          } else if (now >= next.reload) {
            // A reload is hitless: no window.
            reloads++;
            await fx.write(configs[reloads % 2] ?? "");
            process.kill(pid, "SIGHUP");
            next = { ...next, reload: now + 10_000 };
          } else {
            await sleep(Math.max(10, Math.min(next.flap, next.toggle, next.reload) - now));
          }
        }
        // Back to the steady state: carrier up, isp2 enabled, config 0; every uplink up.
        if (!carrier) await lab.carrierUp(3);
        if (disabled) await http(lab, "router", "POST", local("/api/v1/uplinks/isp2/enable"));
        await fx.write(configs[0] ?? "");
        process.kill(pid, "SIGHUP");
        windows.push([Date.now(), Date.now() + WINDOW_MS]);
        await waitStatus(lab, allUp, 20_000, "every uplink up again");
        await sleep(3000);
        for (const b of await poller.stop()) seen.set(b.t, b);
        const batches = [...seen.values()].sort((a, b) => a.t - b.t);
        const end = await figures(pid);
        const elapsed = (Date.now() - t0) / 1000;
        collect();
        reloadErrors = refused.size;

        const inWindow = (b: Batch) => windows.some(([a, z]) => b.t >= a - CONN_TIMEOUT_MS && b.t <= z);
        const during = batches.filter((b) => b.t >= t0);
        const total = during.reduce((a, b) => a + b.ok + b.failed, 0);
        const failedIn = during.filter(inWindow).reduce((a, b) => a + b.failed, 0);
        const outside = during.filter((b) => b.failed > 0 && !inWindow(b));
        const r = await lab.exec(
          "router",
          ["env", `NFLB_STATE_DIR=${fx.dir}`, NFLB, "plan", "--diff", "--json", "-c", fx.file],
          {
            timeoutMs: 30_000,
          },
        );
        const plan = JSON.parse(r.stdout) as { same?: boolean; nft?: unknown[]; routing?: unknown[] };
        const mib = (k: number) => (k / 1024).toFixed(1);
        process.stdout.write(
          `# soak: ${elapsed.toFixed(0)} s, ${total} connections (${(total / elapsed).toFixed(0)}/s), ` +
            `${outside.reduce((a, b) => a + b.failed, 0)} failed outside fault windows, ${failedIn} inside; ` +
            `${flaps} carrier flaps, ${toggles} disable/enable, ${reloads} reloads (${reloadErrors} refused); ` +
            `RSS ${mib(start.rssKiB)} → ${mib(end.rssKiB)} MiB, fds ${start.fds} → ${end.fds}, ` +
            `children [${start.children.join(",")}] → [${end.children.join(",")}]; plan --diff same: ${plan.same}\n`,
        );

        assert.deepEqual(outside, [], "connections failed outside the fault windows");
        assert.ok(total > SECONDS * 30, `traffic went on: ${total} connections`);
        assert.equal(reloadErrors, 0);
        assert.ok(flaps >= 2 && toggles >= 2 && reloads >= 2, "the faults ran");
        assert.deepEqual(end.children, start.children, "no leaked or missing helper process");
        assert.ok(end.fds <= start.fds + 4, `file descriptors ${start.fds} → ${end.fds}`);
        assert.ok(
          end.rssKiB <= Math.max(start.rssKiB * 1.5, start.rssKiB + 40 * 1024),
          `RSS ${start.rssKiB} → ${end.rssKiB} KiB`,
        );
        assert.equal(plan.same, true, `the data plane differs from the plan: ${r.stdout}`);
      },
    );
  },
);
