// Issue 15, recovery marks: an uplink taken down by max_rtt comes back only below recover_rtt
// (pfSense's low alarm). Real probes through ISPs whose link toward the router is shaped with tc
// tbf and kept full by a UDP sender inside the ISP, so the probe replies queue for tbf's `latency`.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { ISP_CUSTOMER_IF } from "../../src/lab/isp-firewall.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import type { TrackedProcess } from "../../src/lab/processes.ts";
import { DaemonFixture, sleep, status, uplinksConfig, waitStatus } from "../../testkit/daemon-harness.ts";
import type { StatusJson } from "../../src/daemon/status.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

// Plain JS run with `node -e` in an ISP namespace: 1000-byte UDP datagrams to the router at
// about 2.4 Mbit/s (3 every 10 ms) for DURATION ms: a little more than the 2 Mbit/s shaper drains.
const SENDER = `
import { createSocket } from "node:dgram";
const [host, duration] = process.argv.slice(1);
const s = createSocket("udp4");
const buf = Buffer.alloc(1000, 1);
process.stdout.write("sending\\n");
const tick = setInterval(() => { for (let i = 0; i < 3; i++) s.send(buf, 9, host); }, 10);
setTimeout(() => { clearInterval(tick); s.close(); process.exit(0); }, Number(duration));
process.on("SIGTERM", () => process.exit(0));
`;

describe(
  "nflb run: recover_rtt holds a slow link down until it is below the low mark",
  { skip, timeout: 240_000 },
  () => {
    const lab = new UplinkLab({ uplinks: 2 });
    const fx = new DaemonFixture(lab, () => {
      const probe = `targets: [${lab.addr.targets4.join(", ")}], max_rtt: 150ms`;
      const [isp1, isp2] = [lab.uplink(1), lab.uplink(2)];
      return uplinksConfig(
        {
          isp1: { interface: isp1.wanIf, gateway: isp1.gateway4, probe: `${probe}, recover_rtt: 30ms` },
          // isp2 is the control: the same high mark, no low mark.
          isp2: { interface: isp2.wanIf, gateway: isp2.gateway4, probe },
        },
        ["balance: { from: [lan0] }"],
      );
    });
    const shape = (i: number, latency: string) =>
      lab.run(`isp${i}`, [
        "tc",
        "qdisc",
        "replace",
        "dev",
        ISP_CUSTOMER_IF,
        "root",
        "tbf",
        "rate",
        "2mbit",
        "burst",
        "16kb",
        "latency",
        latency,
      ]);
    const up = (s: StatusJson, n: string) => s.uplinks.find((u) => u.name === n);

    before(() => fx.up(), { timeout: 90_000 });
    // The UDP senders are the lab's processes: down() stops them by pid with the lab.
    after(() => fx.down(), { timeout: 60_000 });

    test(
      "down above max_rtt; between the marks only the link without recover_rtt returns; below it, both",
      { timeout: 120_000 },
      async (t) => {
        const senders: TrackedProcess[] = [];
        for (const i of [1, 2]) {
          await shape(i, "250ms");
          senders.push(
            lab.spawn(`isp${i}`, [
              process.execPath,
              "--input-type=module",
              "-e",
              SENDER,
              lab.uplink(i).router4,
              "60000",
            ]),
          );
        }
        await waitStatus(
          lab,
          (s) => up(s, "isp1")?.state === "down" && up(s, "isp2")?.state === "down",
          15_000,
          "both down: replies queue ~250 ms",
        );
        const slow = await status(lab);
        t.diagnostic(
          `queued: isp1 ${up(slow, "isp1")?.reason}; rtt ${up(slow, "isp1")?.rtt_ms?.toFixed(1)} ms`,
        );
        assert.match(up(slow, "isp1")?.reason ?? "", /max_rtt/);

        // Between the marks (~50 ms): isp2 comes back after up_after rounds, isp1 must not.
        for (const i of [1, 2]) await shape(i, "50ms");
        await waitStatus(lab, (s) => up(s, "isp2")?.state === "up", 15_000, "isp2 (no low mark) up");
        await sleep(3000);
        const mid = await status(lab);
        const rtt1 = up(mid, "isp1")?.rtt_ms ?? 0;
        t.diagnostic(`between the marks: isp1 ${up(mid, "isp1")?.state}, rtt ${rtt1.toFixed(1)} ms`);
        assert.equal(up(mid, "isp1")?.state, "down", "isp1 is held down above recover_rtt");
        assert.ok(rtt1 > 30 && rtt1 < 150, `isp1's RTT ${rtt1} ms is between the marks`);

        // The queue gone: isp1 is below its low mark and returns.
        for (const p of senders) await p.stop(2000);
        const back = await waitStatus(
          lab,
          (s) => up(s, "isp1")?.state === "up",
          15_000,
          "isp1 up below recover_rtt",
        );
        t.diagnostic(`isp1 back: ${up(back, "isp1")?.reason}`);
      },
    );
  },
);
