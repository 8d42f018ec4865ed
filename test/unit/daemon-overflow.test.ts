// The daemon's overflow loop without a kernel: interface counters from a fake, the data plane a
// recorder. Load on isp1's interface → isp1 spills → a reconcile puts the split on isp2 → idle
// again → back on isp1; the metered isp3 never in the split while another uplink is up.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import type { UplinkMonitor, UplinkMonitorEvents, UplinkObservation } from "../../src/health/types.ts";
import { Daemon } from "../../src/daemon/daemon.ts";
import { silentLog } from "../../src/daemon/log.ts";
import type { StatusJson } from "../../src/daemon/status.ts";
import { idleOps, wanFacts } from "../../testkit/dataplane-fakes.ts";
import { until } from "../../testkit/until.ts";

class FakeUplink extends EventEmitter<UplinkMonitorEvents> implements UplinkMonitor {
  obs: UplinkObservation;
  constructor(name: string) {
    super();
    this.obs = { name, state: "up", reason: "fake", rttMs: 1, jitterMs: 0.1, loss: 0, quality: 1, since: 0 };
  }
  start() {}
  async stop() {}
  snapshot() {
    return this.obs;
  }
}

const CONFIG = `version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, capacity: 10M }
  isp2: { interface: wan2, gateway: 100.64.2.1, capacity: { down: 5M } }
  isp3: { interface: wan3, gateway: 100.64.3.1, metered: true }
balance:
  method: overflow
  overflow: { interval: 100ms, smoothing: 100ms }
`;

test("overflow in the daemon: spill on load, back when idle, the metered uplink held out", async () => {
  const dir = await mkdtemp(join(tmpdir(), "nflb-overflow-"));
  const file = join(dir, "nflb.yaml");
  await writeFile(file, CONFIG);
  const ops = idleOps({ readFacts: async () => wanFacts() });
  // wan1's counters grow by `rate` bit/s of real time.
  let rate = 0;
  let rx = 0;
  let last = Date.now();
  const d = await Daemon.create({
    configFile: file,
    serveApi: false,
    load: loadConfig,
    log: silentLog,
    ops,
    readCounters: async () => new Map(),
    readLinkBytes: async (iface) => {
      if (iface !== "wan1") return { rx: 0, tx: 0 };
      const now = Date.now();
      rx += (rate / 8) * ((now - last) / 1000);
      last = now;
      return { rx: Math.round(rx), tx: 0 };
    },
    factories: { uplink: ({ name }) => new FakeUplink(name), backend: () => assert.fail("no services") },
  });
  const share = (s: StatusJson, n: string) => s.uplinks.find((u) => u.name === n)?.share;
  const of = (s: StatusJson, n: string) => s.uplinks.find((u) => u.name === n);
  try {
    await d.start();
    let s = await d.status();
    assert.equal(share(s, "isp1"), 1);
    assert.equal(of(s, "isp1")?.overflow, "filling");
    assert.equal(of(s, "isp3")?.overflow, null);
    assert.equal(of(s, "isp3")?.effective_weight, 0);
    rate = 9_500_000;
    await until("isp1 spilling and the split on isp2", async () => {
      s = await d.status();
      return of(s, "isp1")?.overflow === "spilling" && share(s, "isp2") === 1;
    });
    assert.ok((of(s, "isp1")?.load?.down ?? 0) > 8_000_000);
    assert.equal(share(s, "isp3"), 0);
    assert.ok(d.events.recent().some((e) => e.name === "isp1" && e.state === "spilling"));
    rate = 0;
    await until("isp1 filling again", async () => share(await d.status(), "isp1") === 1);
    const metrics = (await d.metrics()).body;
    assert.match(metrics, /nflb_uplink_spilling\{uplink="isp1"\} 0/);
    assert.match(metrics, /nflb_uplink_capacity_bits_per_second\{uplink="isp2",direction="down"\} 5000000/);
    assert.doesNotMatch(metrics, /nflb_uplink_capacity_bits_per_second\{uplink="isp2",direction="up"\}/);
  } finally {
    await d.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
