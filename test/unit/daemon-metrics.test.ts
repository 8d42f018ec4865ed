import { test } from "node:test";
import assert from "node:assert/strict";
import { Metrics, Monotonic, type MetricsSource } from "../../src/metrics/registry.ts";
import { readLinkBytes } from "../../src/system/linkstats.ts";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

function source(conns: { n: number }): MetricsSource {
  return {
    uplinks: () => [
      { name: "isp1", iface: "wan1", up: true, rttMs: 12.5, loss: 0.1, share: 0.75 },
      { name: "isp2", iface: "wan2", up: false, rttMs: null, loss: 1, share: 0 },
    ],
    backends: () => [
      { service: "web", backend: "10.1.1.1:80", up: true, counter: "svc_web_b0" },
      { service: "web", backend: "10.1.1.2:80", up: false, counter: null },
    ],
    cluster: () => ({ node: "node-a", bucketsOwned: 128 }),
    readCounters: async () =>
      new Map([
        ["up_isp1_conns", { packets: conns.n, bytes: 0 }],
        ["up_isp2_conns", { packets: 5, bytes: 0 }],
        ["svc_web_b0", { packets: 9, bytes: 0 }],
      ]),
    readLinkBytes: async (iface) => (iface === "wan1" ? { rx: 1000, tx: 200 } : null),
  };
}

test("every metric of the contract, with its labels", async () => {
  const conns = { n: 40 };
  const m = new Metrics(source(conns));
  m.declareUplinks(["isp1", "isp2"]);
  m.transitions.inc({ uplink: "isp2", to: "down" });
  m.applySeconds.observe({ kind: "update" }, 0.004);
  const text = await m.scrape();
  const expect = [
    'nflb_uplink_up{uplink="isp1"} 1',
    'nflb_uplink_up{uplink="isp2"} 0',
    'nflb_uplink_rtt_seconds{uplink="isp1"} 0.0125',
    'nflb_uplink_loss_ratio{uplink="isp2"} 1',
    'nflb_uplink_share{uplink="isp1"} 0.75',
    'nflb_uplink_connections_total{uplink="isp1"} 40',
    'nflb_uplink_bytes_total{uplink="isp1",direction="in"} 1000',
    'nflb_uplink_bytes_total{uplink="isp1",direction="out"} 200',
    'nflb_uplink_transitions_total{uplink="isp2",to="down"} 1',
    'nflb_uplink_transitions_total{uplink="isp1",to="up"} 0',
    'nflb_backend_up{service="web",backend="10.1.1.2:80"} 0',
    'nflb_backend_connections_total{service="web",backend="10.1.1.1:80"} 9',
    'nflb_cluster_buckets_owned{node="node-a"} 128',
    'nflb_apply_seconds_count{kind="update"} 1',
    'nflb_apply_seconds_count{kind="full"} 0',
    'nflb_apply_seconds_bucket{le="0.005",kind="update"} 1',
  ];
  for (const line of expect) assert.ok(text.includes(line + "\n"), `missing: ${line}`);
  assert.doesNotMatch(text, /nflb_uplink_rtt_seconds\{uplink="isp2"\}/, "no RTT before an answer");
  assert.match(text, /^# TYPE nflb_uplink_connections_total counter$/m);
  assert.match(text, /^# TYPE nflb_apply_seconds histogram$/m);
  assert.match(text, /^process_resident_memory_bytes /m);

  // The table was replaced (a reload): the kernel counter restarted, the exported one did not.
  conns.n = 3;
  assert.ok((await m.scrape()).includes('nflb_uplink_connections_total{uplink="isp1"} 43\n'));
});

test("Monotonic carries kernel counter resets", () => {
  const mono = new Monotonic();
  assert.deepEqual(
    [10, 15, 2, 4, 0, 1].map((v) => mono.value("k", v)),
    [10, 15, 17, 19, 19, 20],
  );
});

test("link byte counters come from sysfs", async () => {
  const root = await mkdtemp(join(tmpdir(), "nflb-sys-"));
  await mkdir(join(root, "wan1", "statistics"), { recursive: true });
  await writeFile(join(root, "wan1", "statistics", "rx_bytes"), "123\n");
  await writeFile(join(root, "wan1", "statistics", "tx_bytes"), "45\n");
  assert.deepEqual(await readLinkBytes("wan1", root), { rx: 123, tx: 45 });
  assert.equal(await readLinkBytes("wan2", root), null);
  assert.equal(await readLinkBytes("../etc", root), null);
});
