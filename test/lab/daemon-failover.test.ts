// `nflb run` in a lab router with real probes and real LAN traffic: failover on a blackholed
// upstream and on carrier loss, recovery with hysteresis, a long-lived connection untouched on the
// healthy uplink, and probes that never leave by the wrong uplink. Needs root.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import {
  allUp,
  failures,
  labConfig,
  recoveredAt,
  sleep,
  startPoller,
  status,
  timeline,
  waitStatus,
  DaemonFixture,
} from "../../testkit/daemon-harness.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

/** The bounds, at default probe settings. */
const BLACKHOLE_BOUND_MS = 1500;
const CARRIER_BOUND_MS = 500;

describe("nflb run: failover with real probes (2 uplinks, weights 2:1)", { skip, timeout: 240_000 }, () => {
  const lab = new UplinkLab({ uplinks: 2, clientAddresses: 1 });
  // The extra client address is pinned to isp2: a long-lived connection known to use the healthy link.
  const pinned = () => lab.addr.lan.extra[0] ?? "";
  const fx = new DaemonFixture(lab, () => {
    const extra = [
      "rules:",
      `  - { name: holder, source: [${pinned()}/32], via: [isp2] }`,
      `  - { name: sticky, destination: [${lab.addr.targets4[1]}/32], sticky: 30m }`,
    ].join("\n");
    return labConfig(lab, { weights: [2, 1], extra });
  });

  before(() => fx.up(), { timeout: 90_000 });
  after(() => fx.down(), { timeout: 60_000 });

  test(
    "blackholed upstream: new connections all succeed again within 1.5 s; the healthy uplink's long connection never errs; recovery after up_after rounds",
    { timeout: 90_000 },
    async (t) => {
      const u1 = lab.uplink(1);
      const holder = await lab.startHolder({
        from: "lan",
        dst: lab.addr.server4,
        port: lab.ports.echo,
        source: pinned(),
        intervalMs: 100,
        durationMs: 60_000,
      });
      assert.equal(holder.connected.greeting, `inet ${lab.uplink(2).router4}`, "holder pinned to isp2");
      await lab.resetIspCounters(2);
      // Remembered sticky choices, one per uplink (marks 0x100 and 0x200) and an IPv6 (hashed) one.
      const t2 = lab.addr.targets4[1];
      await lab.run("router", ["nft", "-f", "-"], {
        input:
          `add element inet nflb rule_1_sticky4 { 198.18.0.98 . ${t2} : 0x100, 198.18.0.99 . ${t2} : 0x200 }\n` +
          "add element inet nflb rule_1_sticky6 { 12345 : 0x100, 777 : 0x200 }\n",
      });
      const poller = await startPoller(lab, { durationMs: 30_000 });
      await sleep(1000);
      const cut = Date.now();
      await lab.cutUpstream(1);
      await waitStatus(lab, (s) => s.uplinks[0]?.state === "down", 5000, "isp1 down");
      await sleep(1500);

      // (4) While isp1 is down its probes keep going, and never by isp2.
      const isp2 = await lab.ispCounters(2);
      const strays = isp2.arrived.filter((f) => f.source === u1.router4);
      assert.deepEqual(strays, [], "no packet with isp1's source arrived at isp2");
      if (isp2.foreignDropped > 0) {
        // Seen once in CI (14 packets), never in local runs: say where they came from next time.
        const foreign = isp2.arrived.filter((f) => f.source !== lab.uplink(2).router4);
        t.diagnostic(`isp2 dropped foreign sources: ${JSON.stringify(foreign)}`);
      }
      assert.equal(isp2.foreignDropped, 0);
      const down = await status(lab);
      assert.deepEqual(
        down.uplinks.map((u) => [u.name, u.state, u.share]),
        [
          ["isp1", "down", 0],
          ["isp2", "up", 1],
        ],
      );
      assert.match(down.uplinks[0]?.reason ?? "", /round/);
      // flush_on_down: isp1's conntrack entries and sticky choices went, isp2's stayed.
      const forgot = fx.daemon?.logs().find((l) => l.msg === "forgot the connections of a dead uplink");
      assert.equal(forgot?.uplink, "isp1");
      assert.ok(Number(forgot?.conntrack) > 0, "the LAN's connections through isp1 were flushed");
      assert.equal(forgot?.sticky, 2);
      const sticky4 = await lab.run("router", ["nft", "list", "map", "inet", "nflb", "rule_1_sticky4"]);
      assert.doesNotMatch(sticky4, /198\.18\.0\.98/);
      assert.match(sticky4, /198\.18\.0\.99 \. [0-9.]+ expires \S+ : 0x00000200/);
      const sticky6 = await lab.run("router", ["nft", "list", "map", "inet", "nflb", "rule_1_sticky6"]);
      assert.doesNotMatch(sticky6, /12345/);
      assert.match(sticky6, /777/);

      // (3) Recovery: not at once (hysteresis: up_after 10 rounds of 200 ms), then shares back to 2:1.
      const restored = Date.now();
      await lab.restoreUpstream(1);
      await sleep(1000);
      assert.equal((await status(lab)).uplinks[0]?.state, "down", "still down 1 s after the restore");
      // State is the monitor's word; share is what the kernel does, a reconcile later.
      const up = await waitStatus(
        lab,
        (s) => s.uplinks[0]?.state === "up" && (s.uplinks[0]?.share ?? 0) > 0,
        15_000,
        "isp1 up again",
      );
      assert.deepEqual(
        up.uplinks.map((u) => Math.round(u.share * 1000) / 1000),
        [0.667, 0.333],
      );
      assert.ok(
        Date.parse(up.uplinks[0]?.since ?? "") - restored >= 1500,
        "up only after several good rounds",
      );
      await sleep(1000);

      const batches = await poller.stop();
      const hold = await holder.stop();
      const baseline = batches.filter((b) => b.t < cut);
      assert.ok(baseline.length >= 5 && failures(baseline, 0).length === 0, "all connections worked before");
      const at = recoveredAt(batches, cut);
      assert.ok(at !== null, "connections kept failing to the end");
      t.diagnostic(`blackhole: new connections all succeed again ${at - cut} ms after the cut`);
      if (at - cut > BLACKHOLE_BOUND_MS) t.diagnostic(timeline(batches, fx.daemon?.logs() ?? [], cut, 4000));
      assert.ok(at - cut <= BLACKHOLE_BOUND_MS, `recovered ${at - cut} ms after the cut (bound 1500)`);
      // After recovery every batch succeeded, including those after isp1 came back.
      const late = batches.filter((b) => b.t > Date.parse(up.uplinks[0]?.since ?? ""));
      assert.ok(
        late.some((b) => Object.keys(b.seen).includes(`inet ${u1.router4}`)),
        "isp1 carries again",
      );
      assert.equal(hold.failures, 0, `long-lived connection errors: ${hold.errors.join("; ")}`);
      assert.equal(hold.end, "signal");
      assert.ok(hold.exchanges > 50);
    },
  );

  test("carrier loss: new connections all succeed again within 0.5 s", { timeout: 60_000 }, async (t) => {
    await waitStatus(lab, allUp, 15_000, "every uplink up");
    const poller = await startPoller(lab, { durationMs: 30_000 });
    await sleep(1000);
    const cut = Date.now();
    await lab.carrierDown(1);
    const down = await waitStatus(lab, (s) => s.uplinks[0]?.state === "down", 3000, "isp1 down");
    assert.match(down.uplinks[0]?.reason ?? "", /carrier/);
    await sleep(1000);
    await lab.carrierUp(1);
    await waitStatus(lab, (s) => s.uplinks[0]?.state === "up", 15_000, "isp1 up again");
    await sleep(500);
    const batches = await poller.stop();
    const at = recoveredAt(batches, cut);
    assert.ok(at !== null, "connections kept failing to the end");
    t.diagnostic(`carrier loss: new connections all succeed again ${at - cut} ms after the cut`);
    if (at - cut > CARRIER_BOUND_MS) t.diagnostic(timeline(batches, fx.daemon?.logs() ?? [], cut, 3000));
    assert.ok(at - cut <= CARRIER_BOUND_MS, `recovered ${at - cut} ms after carrier loss (bound 500)`);
    const logs = fx.daemon?.logs() ?? [];
    assert.ok(
      logs.some((l) => l.msg === "uplink isp1 down" && /carrier/.test(String(l.reason))),
      "the transition is logged with its reason",
    );
  });
});
