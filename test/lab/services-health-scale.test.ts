// Health checks at scale (issue 11): `nflb run` with 1,000 round-robin services × 50 backends,
// `check: tcp`, every backend unreachable (addresses with no route, no answer to ARP, or a closed
// port). The first rounds take all 50,000 down; the daemon must log a bounded number of lines (at
// most 20 per-backend lines a second plus one summary), apply them in few reconciles (not one per
// backend), keep its sockets bounded, and keep answering its API. Counts only, no timings:
// bench/services-health.ts records those. Needs root.
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { SERVICE_LAB as L, ServiceLab } from "../../src/lab/service-lab.ts";
import { MAX_IN_FLIGHT } from "../../src/health/check-limiter.ts";
import { API_PORT, DaemonFixture } from "../../testkit/daemon-harness.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;
const SERVICES = Number(process.env.NFLB_TEST_SERVICES ?? 1000);
const BACKENDS = 50;
const TOTAL = SERVICES * BACKENDS;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Backend n: 198.18.0.0/22 is the balancer's LAN (the client answers 198.18.0.2 with a reset,
 * the other addresses never answer ARP: the check times out); beyond it there is no route at all.
 */
const backendAddr = (n: number) => `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;

function config(): string {
  const lines = ["version: 1", "services:"];
  for (let s = 0; s < SERVICES; s++) {
    lines.push(
      `  s${s}:`,
      `    listen: ${L.vip4}:${1000 + s}`,
      "    scheduler: round-robin",
      "    check: { method: tcp, interval: 2s, timeout: 200ms, rise: 2, fall: 2 }",
      "    backends:",
    );
    for (let b = 0; b < BACKENDS; b++) lines.push(`      - { address: ${backendAddr(s * BACKENDS + b)}:80 }`);
  }
  return lines.join("\n") + "\n";
}

interface Seen {
  lines: number;
  /** Per-backend "down" lines plus the `down` counts of summary lines. */
  down: number;
  perBackendLines: number;
  summaries: number;
  /** `applied (update)` lines of health reconciles, with their reasons' lengths. */
  healthApplies: number;
  longestReason: number;
  firstDownAt: number | null;
  allDownAt: number | null;
}

describe(
  `nflb run with ${SERVICES} services × ${BACKENDS} unreachable backends, check tcp`,
  { skip, timeout: 600_000 },
  () => {
    const lab = new ServiceLab({ backends: 1 });
    const fx = new DaemonFixture(lab, config, {
      role: "lb",
      api: `127.0.0.1:${API_PORT}`,
      ready: null,
      startMs: 180_000,
      stopMs: 20_000,
      // Every line from the start, not the tail the harness keeps: seen by a listener of our own.
      start: false,
    });
    const seen: Seen = {
      lines: 0,
      down: 0,
      perBackendLines: 0,
      summaries: 0,
      healthApplies: 0,
      longestReason: 0,
      firstDownAt: null,
      allDownAt: null,
    };

    before(
      async () => {
        await fx.up();
        await fx.start(null);
        let rest = "";
        fx.daemon?.proc.child.stdout?.on("data", (chunk: Buffer) => {
          const parts = (rest + chunk.toString()).split("\n");
          rest = parts.pop() ?? "";
          for (const text of parts) {
            if (!text.startsWith("{")) continue;
            seen.lines++;
            const l = JSON.parse(text) as Record<string, unknown>;
            const msg = String(l.msg);
            if (/^backend \S+ down$/.test(msg)) {
              seen.perBackendLines++;
              seen.down++;
            } else if (msg.includes("not logged one by one")) {
              seen.summaries++;
              seen.down += Number(l.down ?? 0);
            } else if (
              msg === "applied (update)" &&
              /^(\d+ backend health changes|backend )/.test(String(l.reason))
            ) {
              seen.healthApplies++;
              seen.longestReason = Math.max(seen.longestReason, String(l.reason).length);
            }
            if (seen.down > 0) seen.firstDownAt ??= Date.now();
            if (seen.down >= TOTAL) seen.allDownAt ??= Date.now();
          }
        });
      },
      { timeout: 300_000 },
    );
    after(() => fx.down(), { timeout: 60_000 });

    test(
      "every backend goes down: bounded log lines, few reconciles, bounded sockets, the API answers",
      { timeout: 300_000 },
      async () => {
        const pid = fx.daemon?.proc.pid ?? assert.fail("no daemon");
        const api = `http://127.0.0.1:${API_PORT}/api/v1`;
        const answers: { what: string; code: number; ms: number }[] = [];
        /** One API call with curl in the balancer's namespace: its HTTP status and curl's total time. */
        const curl = async (url: string, body?: unknown) => {
          const argv = [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            // Generous: a weight change answers after its reconcile, which waits for a health
            // reconcile in progress (seconds at 50,000 backends on a loaded 2-core box).
            "--max-time",
            "30",
            "-w",
            "%{http_code} %{time_total}",
          ];
          if (body !== undefined)
            argv.push("-X", "POST", "-H", "content-type: application/json", "-d", JSON.stringify(body));
          const r = await lab.exec("lb", [...argv, url], { timeoutMs: 40_000 });
          const [code, secs] = r.stdout.trim().split(" ");
          return { code: Number(code) || 0, ms: Math.round(Number(secs) * 1000) };
        };
        let mostFds = 0;
        const deadline = Date.now() + 240_000;
        let calls = 0;
        while (seen.allDownAt === null && Date.now() < deadline) {
          mostFds = Math.max(mostFds, (await readdir(`/proc/${pid}/fd`)).length);
          // While the checks run: the dashboard page, and every other time a runtime weight change.
          const weight = calls++ % 2 === 1;
          const r = weight
            ? await curl(`${api}/services/s7/backends/${backendAddr(350)}:80/weight`, {
                weight: 1 + (calls % 3),
              })
            : await curl(`http://127.0.0.1:${API_PORT}/`);
          answers.push({ what: weight ? "weight" : "dashboard", ...r });
          await sleep(500);
        }
        // The last summary line comes at the end of its second.
        await sleep(1500);
        const tail = fx.daemon?.proc.stdout().slice(-4000);
        const diag = JSON.stringify({ ...seen, mostFds, answers: answers.slice(0, 40), tail });
        assert.ok(seen.allDownAt !== null, `all ${TOTAL} backends down in time: ${diag}`);
        assert.equal(seen.down, TOTAL, `each backend down once: ${diag}`);
        const seconds = Math.ceil(((seen.allDownAt ?? 0) - (seen.firstDownAt ?? 0)) / 1000) + 2;
        assert.ok(seen.perBackendLines <= 20 * seconds, `at most 20 per-backend lines a second: ${diag}`);
        assert.ok(seen.summaries <= seconds, `at most one summary a second: ${diag}`);
        assert.ok(seen.lines < 25 * seconds + 50, `bounded log lines: ${diag}`);
        assert.ok(seen.healthApplies >= 1 && seen.healthApplies <= 2 * seconds, `few reconciles: ${diag}`);
        // A reason names 3 backends and a count; the reconciler joins those of requests that waited
        // for the same run. Bounded by the runs, not by the 50,000 backends.
        assert.ok(seen.longestReason < 4000, `short reasons: ${diag}`);
        assert.ok(mostFds < MAX_IN_FLIGHT + 200, `sockets bounded: ${diag}`);
        assert.ok(answers.length > 0 && answers.every((a) => a.code === 200), `the API answered: ${diag}`);
        // The status (50,000 backends) says the same.
        const st = await lab.exec("lb", ["curl", "-sS", "--max-time", "60", `${api}/status`], {
          timeoutMs: 70_000,
        });
        assert.equal(st.code, 0, st.stderr);
        const status = JSON.parse(st.stdout) as { services: { backends: { state: string }[] }[] };
        const states = status.services.flatMap((s) => s.backends.map((b) => b.state));
        assert.equal(states.length, TOTAL);
        assert.equal(states.filter((x) => x === "down").length, TOTAL);
        console.log(`# ${JSON.stringify({ ...seen, mostFds, answers })}`);
      },
    );
  },
);
