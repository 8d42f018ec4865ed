// Issue 15, "what it must show" 2: `balance.method: overflow` with capacities 10:5 Mbit/s, the ISPs
// shaped to them with tc tbf, a metered third uplink. `nflb run` on the router, real TCP traffic
// from the LAN, every connection counted at the far end by the source address it arrived with.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { ISP_CUSTOMER_IF, ISP_UPSTREAM_IF } from "../../src/lab/isp-firewall.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import { DaemonFixture, http, lanBatch, status, waitStatus } from "../../testkit/daemon-harness.ts";
import { nflb } from "./support/nflb.ts";
import type { StatusJson } from "../../src/daemon/status.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

/** Mbit/s each ISP is shaped to, both directions (isp3: not shaped). */
const RATES: Record<number, number> = { 1: 10, 2: 5 };

// Plain JS run with `node -e` in the LAN: one TCP connection to the echo server (which echoes
// everything back), written to as fast as it takes for DURATION ms: bulk load in both directions
// on whichever uplink carries it. Prints the greeting (the source the server saw), then exits.
const BULK = `
import { connect } from "node:net";
const [host, port, duration] = process.argv.slice(1);
const s = connect({ host, port: Number(port) });
const chunk = Buffer.alloc(65536, 120);
let greeted = false;
let buf = "";
s.on("data", (d) => {
  if (greeted) return;
  buf += d.toString("latin1");
  const nl = buf.indexOf("\\n");
  if (nl >= 0) { greeted = true; process.stdout.write(JSON.stringify({ greeting: buf.slice(0, nl) }) + "\\n"); }
});
const pump = () => { while (s.write(chunk)) {} };
s.on("connect", pump);
s.on("drain", pump);
s.on("error", (e) => { process.stderr.write(String(e) + "\\n"); process.exit(1); });
setTimeout(() => { s.destroy(); process.exit(0); }, Number(duration));
`;

describe("nflb run: overflow over capacities 10:5 Mbit/s, isp3 metered", { skip, timeout: 300_000 }, () => {
  const lab = new UplinkLab({ uplinks: 3 });
  const viaRuleTarget = () => lab.addr.targets4[1] ?? "";
  const fx = new DaemonFixture(lab, () => {
    const targets = lab.addr.targets4.join(", ");
    const lines = ["version: 1", "uplinks:"];
    for (const u of lab.uplinks) {
      const rate = RATES[u.index];
      lines.push(
        `  isp${u.index}:`,
        `    interface: ${u.wanIf}`,
        `    gateway: ${u.gateway4}`,
        rate ? `    capacity: ${rate}Mbit` : "    metered: true",
        `    probe: { targets: [${targets}] }`,
      );
    }
    lines.push(
      "balance: { from: [lan0], method: overflow }",
      "rules:",
      `  - { name: to-metered, destination: [${viaRuleTarget()}/32], protocol: tcp, via: [isp3] }`,
    );
    return lines.join("\n") + "\n";
  });
  const addr = (i: number) => `inet ${lab.uplink(i).router4}`;
  /** Connections that arrived through isp3 in any batch (must stay 0 until isp1 and isp2 are down). */
  let onMetered = 0;
  const batch = async (what: string): Promise<Record<string, number>> => {
    const seen = await lanBatch(lab);
    onMetered += seen[addr(3)] ?? 0;
    console.log(`${what}: ${JSON.stringify(seen)}`);
    return seen;
  };
  const up = (s: StatusJson, n: string) => s.uplinks.find((u) => u.name === n);

  before(
    async () => {
      await fx.up();
      // tbf both ways: toward the router (its download) and toward the internet (its upload).
      for (const [i, mbit] of Object.entries(RATES))
        for (const dev of [ISP_CUSTOMER_IF, ISP_UPSTREAM_IF])
          await lab.run(`isp${i}`, [
            "tc",
            "qdisc",
            "replace",
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            `${mbit}mbit`,
            "burst",
            "64kb",
            "latency",
            "100ms",
          ]);
    },
    { timeout: 120_000 },
  );
  after(() => fx.down(), { timeout: 60_000 });

  test("low traffic: every new connection on isp1; isp3 out of the balance; a rule still reaches isp3", async () => {
    const s = await status(lab);
    assert.equal(up(s, "isp1")?.overflow, "filling");
    assert.equal(up(s, "isp1")?.share, 1);
    assert.equal(up(s, "isp3")?.effective_weight, 0);
    assert.equal(up(s, "isp3")?.metered, true);
    assert.deepEqual(up(s, "isp1")?.capacity, { down: 10_000_000, up: 10_000_000 });
    assert.ok(up(s, "isp1")?.load, "load is measured");
    const seen = await batch("idle");
    assert.deepEqual(seen, { [addr(1)]: 24 });
    const r = await lab.runClient({
      from: "lan",
      dst: viaRuleTarget(),
      port: lab.ports.echo,
      count: 8,
      parallel: 4,
      timeoutMs: 1000,
      deadlineMs: 10_000,
    });
    assert.equal(r.failed, 0, r.errors.join("; "));
    assert.deepEqual(r.bySeen, { [addr(3)]: 8 }, "the rule naming the metered uplink uses it");
  });

  test(
    "bulk traffic above 80% of isp1: new connections spill to isp2, the bulk flow stays; below 70% they come back",
    { timeout: 120_000 },
    async (t) => {
      const started = Date.now();
      const bulk = lab.spawn("lan", [
        process.execPath,
        "--input-type=module",
        "-e",
        BULK,
        lab.addr.server4,
        String(lab.ports.echo),
        "12000",
      ]);
      let ended = false;
      void bulk.exited.then(() => (ended = true));
      try {
        const line = await bulk.waitForLine(/greeting/, 5000);
        assert.match(line, new RegExp(`"greeting":"${addr(1)}"`), "the bulk flow leaves by isp1");
        const s = await waitStatus(
          lab,
          (x) => up(x, "isp1")?.overflow === "spilling" && up(x, "isp2")?.share === 1,
          10_000,
          "isp1 spilling, the split on isp2",
        );
        const spillMs = Date.now() - started;
        const logLine = fx.daemon
          ?.logs()
          .find((l) => typeof l.msg === "string" && l.msg === "uplink isp1 spilling");
        t.diagnostic(
          `spill seen ${spillMs} ms after the bulk started; isp1 load ${JSON.stringify(up(s, "isp1")?.load)}`,
        );
        if (logLine)
          t.diagnostic(
            `daemon: ${String(logLine.reason)} at +${Date.parse(String(logLine.time)) - started} ms`,
          );
        assert.ok((up(s, "isp1")?.load_ratio ?? 0) > 0.7, "isp1 is loaded");
        const seen = await batch("isp1 full");
        assert.deepEqual(seen, { [addr(2)]: 24 }, "new connections spill to isp2");
        const metrics = (await http(lab, "router", "GET", "http://127.0.0.1:9110/metrics")).body;
        assert.match(metrics, /nflb_uplink_spilling\{uplink="isp1"\} 1\n/);
        assert.match(metrics, /nflb_uplink_load_bits_per_second\{uplink="isp1",direction="up"\} \d{6,}/);
        assert.match(
          metrics,
          /nflb_uplink_capacity_bits_per_second\{uplink="isp2",direction="down"\} 5000000\n/,
        );
        const table = await nflb(lab, "router", ["status", "--api", "127.0.0.1:9110"]);
        assert.match(table.stdout, /LOAD DOWN\/UP/);
        assert.match(table.stdout, /isp1 .* of 10M\/10M spilling/);
        assert.match(table.stdout, /isp3 .* metered/);
        assert.equal(ended, false, "the bulk connection still runs on isp1");
      } finally {
        await bulk.stop(2000);
      }
      // Load falls once the bulk flow ends; below recover (70%) isp1 fills again.
      const back = await waitStatus(
        lab,
        (x) => up(x, "isp1")?.overflow === "filling" && up(x, "isp1")?.share === 1,
        15_000,
        "isp1 filling again",
      );
      t.diagnostic(`isp1 filling again, load ${JSON.stringify(up(back, "isp1")?.load)}`);
      const seen = await batch("isp1 idle again");
      assert.deepEqual(seen, { [addr(1)]: 24 });
    },
  );

  test(
    "isp3 gets nothing until isp1 and isp2 are both down, then the new connections",
    { timeout: 90_000 },
    async () => {
      assert.equal(onMetered, 0, "no balanced connection went by the metered uplink");
      await lab.cutUpstream(1);
      await waitStatus(lab, (x) => up(x, "isp1")?.state === "down", 10_000, "isp1 down");
      const seen = await batch("isp1 down");
      assert.deepEqual(seen, { [addr(2)]: 24 }, "isp2 next, not the metered isp3");
      await lab.cutUpstream(2);
      await waitStatus(
        lab,
        (x) => up(x, "isp2")?.state === "down" && up(x, "isp3")?.share === 1,
        10_000,
        "isp2 down, the split on isp3",
      );
      const last = await batch("isp1 and isp2 down");
      assert.deepEqual(last, { [addr(3)]: 24 }, "every new connection by the metered uplink");
      await lab.restoreUpstream(1);
      await lab.restoreUpstream(2);
    },
  );
});
