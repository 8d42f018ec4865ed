// Passive health of the uplinks with `nflb run`, real traffic and default probe settings: a LAN
// client opens 50 new TCP connections/s over 2 uplinks; isp1's upstream is blackholed (the ISP
// drops everything both ways, the carrier stays up). The connections that fail stop within 500 ms
// of the cut in every trial (the median goes to bench/uplinks-passive.ts). Then random loss on
// isp1 (5, 10, 20 %) with the same traffic: no transition at all. Destinations behind isp1 that
// refuse every connection (RST) answer: isp1 is never suspect. The same with the kernel-side event
// mask (`balance.conntrack_events: minimal`, last: it restarts the daemon). Needs root and fping.
//
//   NFLB_PASSIVE_TRIALS=20            trials of the blackhole (default 5)
//   NFLB_PASSIVE_LOSS_SECONDS=600     seconds per loss level (default 30)
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import { startConnRate } from "../../testkit/conn-rate.ts";
import { DaemonFixture, http, labConfig, sleep, status, waitStatus } from "../../testkit/daemon-harness.ts";
import { blackholeTrial, suspicions, transitions } from "../../testkit/passive-trial.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

const TRIALS = boundedEnv("NFLB_PASSIVE_TRIALS", 5, 1, 200);
const LOSS_S = boundedEnv("NFLB_PASSIVE_LOSS_SECONDS", 30, 5, 3600);
const BOUND_MS = 500;
/**
 * The client starts a connection every 20 ms and the cut (one `nft -f` in the ISP's namespace)
 * takes ~20 ms: a pause or a cut this long means a starved machine.
 */
const STARVED_MS = 100;

function boundedEnv(name: string, def: number, min: number, max: number): number {
  const v = process.env[name];
  const n = v === undefined ? def : Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be ${min}..${max}`);
  return n;
}

describe(
  "passive uplink health: 50 new connections/s, 2 uplinks, default probe settings",
  { skip, timeout: 120_000 + TRIALS * 3 * 15_000 + LOSS_S * 3 * 1000 + 60_000 },
  () => {
    const lab = new UplinkLab({ uplinks: 2 });
    const fx = new DaemonFixture(lab, () => labConfig(lab));

    before(() => fx.up(), { timeout: 90_000 });
    after(() => fx.down(), { timeout: 60_000 });

    test(
      `a blackholed uplink: failed connections stop within ${BOUND_MS} ms of the cut (${TRIALS} trials)`,
      { timeout: TRIALS * 3 * 15_000 + 30_000 },
      async (t) => {
        const times: number[] = [];
        for (let k = 0; k < TRIALS; k++) {
          let r = await blackholeTrial(lab, fx.daemon?.logs ?? (() => []));
          // A trial the machine starved (the client itself paused > 100 ms) is run again, twice at most.
          for (
            let again = 0;
            again < 2 && r.lastFailedMs > BOUND_MS && (r.maxGapMs > STARVED_MS || r.cutMs > STARVED_MS);
            again++
          ) {
            t.diagnostic(
              `trial ${k + 1}: ${r.lastFailedMs} ms, but the machine was starved (client paused ${r.maxGapMs} ms, cut took ${r.cutMs} ms): again`,
            );
            r = await blackholeTrial(lab, fx.daemon?.logs ?? (() => []));
          }
          t.diagnostic(
            `trial ${k + 1}: last failed connection ${r.lastFailedMs} ms after the cut ` +
              `(${r.fromCommandMs} ms after the cut command began) ` +
              `(cut took ${r.cutMs} ms; ${r.failed} failed; longest client pause ${r.maxGapMs} ms); reason: ${r.reason}`,
          );
          if (r.lastFailedMs > BOUND_MS) t.diagnostic(r.timeline);
          assert.match(r.reason, /^passive: \d+ of \d+ new connections unanswered/);
          assert.ok(r.lastFailedMs <= BOUND_MS, `trial ${k + 1}: ${r.lastFailedMs} ms (bound ${BOUND_MS})`);
          times.push(r.lastFailedMs);
        }
        const sorted = [...times].sort((a, b) => a - b);
        t.diagnostic(`median ${sorted[Math.floor((sorted.length - 1) / 2)]} ms, max ${sorted.at(-1)} ms`);
        const s = await status(lab);
        const p = s.uplinks[0]?.passive;
        assert.ok(p && p.answered > 0 && p.unanswered > 0, `isp1 passive status: ${JSON.stringify(p)}`);
        const metrics = await http(lab, "router", "GET", "http://127.0.0.1:9110/metrics");
        assert.match(metrics.body, /nflb_uplink_passive_unanswered_total\{uplink="isp1"\} [1-9]/);
        assert.match(
          metrics.body,
          /nflb_uplink_passive_suspicions_total\{uplink="isp1",outcome="confirmed"\} [1-9]/,
        );
      },
    );

    test(
      "destinations behind isp1 refuse every TCP connection (RST): answered, never suspect; then blackholed: down",
      { timeout: 60_000 },
      async (t) => {
        await waitStatus(
          lab,
          (s) => s.uplinks.every((u) => u.state === "up" && u.share > 0),
          20_000,
          "all up",
        );
        const before = await transitions(lab);
        const suspectedBefore = await suspicions(lab);
        const answeredBefore = (await status(lab)).uplinks[0]?.passive?.answered ?? 0;
        await lab.setRefuse(1, true);
        let summary;
        try {
          const c = await startConnRate(lab, { rate: 50, timeoutMs: 800, durationMs: 4000 });
          summary = (await c.done).summary;
        } finally {
          await lab.setRefuse(1, false);
        }
        const s = await status(lab);
        const p = s.uplinks[0]?.passive;
        const suspected = await suspicions(lab);
        const isp1 = (k: string) => (suspected[k] ?? 0) - (suspectedBefore[k] ?? 0);
        t.diagnostic(
          `${summary.ok} ok, ${summary.failed} refused; isp1 passive ${JSON.stringify(p)}; ` +
            `suspected ${isp1("isp1/cleared")} cleared, ${isp1("isp1/confirmed")} confirmed`,
        );
        assert.ok(summary.failed >= 50, `connections through isp1 were refused (${summary.failed})`);
        assert.ok(summary.ok >= 50, `connections through isp2 worked (${summary.ok})`);
        assert.equal(isp1("isp1/cleared") + isp1("isp1/confirmed"), 0, "isp1 never suspect");
        assert.deepEqual(await transitions(lab), before, "no transition");
        assert.ok(
          (p?.answered ?? 0) - answeredBefore >= summary.failed,
          `each refusal counted as an answer (${(p?.answered ?? 0) - answeredBefore} answered)`,
        );
        // The same uplink, now silent: still suspect and down at once.
        const r = await blackholeTrial(lab, fx.daemon?.logs ?? (() => []));
        t.diagnostic(`blackholed: last failed connection ${r.lastFailedMs} ms after the cut; ${r.reason}`);
        assert.match(r.reason, /^passive: \d+ of \d+ new connections unanswered/);
      },
    );

    for (const loss of [0.05, 0.1, 0.2])
      test(
        `${loss * 100} % random loss on isp1 for ${LOSS_S} s with traffic: no transition`,
        { timeout: LOSS_S * 1000 + 60_000 },
        async (t) => {
          await waitStatus(
            lab,
            (s) => s.uplinks.every((u) => u.state === "up" && u.share > 0),
            20_000,
            "all up",
          );
          const before = await transitions(lab);
          const suspectedBefore = await suspicions(lab);
          await lab.setLoss(1, loss);
          try {
            const c = await startConnRate(lab, { rate: 50, timeoutMs: 3000, durationMs: LOSS_S * 1000 });
            const { summary } = await c.done;
            const isp = await lab.ispCounters(1);
            const after = await transitions(lab);
            const suspected = await suspicions(lab);
            const cleared = (suspected["isp1/cleared"] ?? 0) - (suspectedBefore["isp1/cleared"] ?? 0);
            t.diagnostic(
              `${summary.ok} ok, ${summary.failed} failed, ${isp.lossDropped} packets dropped by isp1; ` +
                `isp1 suspected and cleared by the re-probe ${cleared} time(s); transitions ${JSON.stringify(after)}`,
            );
            assert.ok(isp.lossDropped > 0, "isp1 dropped packets");
            assert.deepEqual(after, before, "no transition under random loss");
          } finally {
            await lab.setLoss(1, 0);
          }
          await sleep(500);
        },
      );

    test(
      "balance.conntrack_events: minimal: decide sets ct event set new,destroy,reply; refusals still answer, a blackhole is still found",
      { timeout: 90_000 },
      async (t) => {
        await fx.write(labConfig(lab).replace(/^( {2}method: .*\n)/m, "$1  conntrack_events: minimal\n"));
        await fx.start();
        const decide = await lab.run("router", ["nft", "list", "chain", "inet", "nflb", "decide"]);
        assert.match(decide, /ct event set new,destroy,reply/);
        const suspectedBefore = await suspicions(lab);
        await lab.setRefuse(1, true);
        let summary;
        try {
          const c = await startConnRate(lab, { rate: 50, timeoutMs: 800, durationMs: 3000 });
          summary = (await c.done).summary;
        } finally {
          await lab.setRefuse(1, false);
        }
        const suspected = await suspicions(lab);
        const isp1 = (k: string) => (suspected[k] ?? 0) - (suspectedBefore[k] ?? 0);
        t.diagnostic(
          `${summary.ok} ok, ${summary.failed} refused; isp1 suspected ${isp1("isp1/cleared")} times`,
        );
        assert.ok(summary.failed >= 30, `connections through isp1 were refused (${summary.failed})`);
        assert.equal(isp1("isp1/cleared") + isp1("isp1/confirmed"), 0, "isp1 never suspect");
        const r = await blackholeTrial(lab, fx.daemon?.logs ?? (() => []));
        t.diagnostic(`blackholed: last failed connection ${r.lastFailedMs} ms after the cut; ${r.reason}`);
        assert.match(r.reason, /^passive: \d+ of \d+ new connections unanswered/);
      },
    );
  },
);
