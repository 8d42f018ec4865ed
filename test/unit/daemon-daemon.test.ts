import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import type { UplinkMonitor, UplinkMonitorEvents, UplinkObservation } from "../../src/health/types.ts";
import type { Desired } from "../../src/plan/desired.ts";
import { Daemon } from "../../src/daemon/daemon.ts";
import { silentLog } from "../../src/daemon/log.ts";
import { idleOps, wanFacts } from "../../testkit/dataplane-fakes.ts";
import { FakeBackend } from "../../testkit/monitor-fakes.ts";

class FakeUplink extends EventEmitter<UplinkMonitorEvents> implements UplinkMonitor {
  started = false;
  stopped = false;
  obs: UplinkObservation;
  constructor(name: string) {
    super();
    this.obs = {
      name,
      state: "up",
      reason: "starting",
      rttMs: null,
      jitterMs: null,
      loss: 0,
      quality: 1,
      since: 0,
    };
  }
  start() {
    this.started = true;
  }
  async stop() {
    this.stopped = true;
  }
  snapshot() {
    return this.obs;
  }
  set(state: "up" | "down", reason: string) {
    this.obs = { ...this.obs, state, reason, rttMs: 4, since: Date.now() };
    this.emit("change", this.obs);
  }
}

const CONFIG = `version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, weight: 3 }
  isp2: { interface: wan2, gateway: 100.64.2.1, weight: 1 }
services:
  web:
    listen: 203.0.113.10:80
    backends:
      - { address: 10.1.1.1:80 }
      - { address: 10.1.1.2:80 }
on_change: [/usr/local/bin/notify, --quiet]
`;

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), "nflb-daemon-"));
  const file = join(dir, "nflb.yaml");
  await writeFile(file, CONFIG);
  const applied: { kind: string; desired?: Desired; script?: string }[] = [];
  const ops = idleOps({
    readFacts: async () => wanFacts(),
    applyFull: async (desired) => {
      if (desired.nft.includes("up_isp9_pin")) throw new Error("nft: no such device wan9");
      applied.push({ kind: "full", desired });
    },
    applyNft: async (script) => void applied.push({ kind: "nft", script }),
    applyRouting: async () => void applied.push({ kind: "routing" }),
    flushConntrack: async () => (applied.push({ kind: "conntrack" }), 0),
  });
  const uplinks = new Map<string, FakeUplink>();
  const backends = new Map<string, FakeBackend>();
  const hooks: NodeJS.ProcessEnv[] = [];
  const d = await Daemon.create({
    configFile: file,
    serveApi: false,
    load: loadConfig,
    log: silentLog,
    ops,
    readCounters: async () => new Map([["up_isp1_conns", { packets: 17, bytes: 0 }]]),
    readLinkBytes: async () => null,
    hookRunner: async (argv, env) => {
      hooks.push({ ...env, ARGV: argv.join(" ") });
      return { code: 0, stdout: "", stderr: "" };
    },
    factories: {
      uplink: ({ name }) => {
        const m = new FakeUplink(name);
        uplinks.set(name, m);
        return m;
      },
      backend: ({ service, backend }) => {
        const m = new FakeBackend(service, backend.address);
        backends.set(backend.address, m);
        return m;
      },
    },
  });
  return { d, file, applied, uplinks, backends, hooks };
}

test("start applies the whole table, then starts every monitor", async () => {
  const s = await setup();
  await s.d.start();
  assert.deepEqual(
    s.applied.map((a) => a.kind),
    ["full"],
  );
  assert.ok([...s.uplinks.values()].every((m) => m.started));
  const st = await s.d.status();
  assert.deepEqual(
    st.uplinks.map((u) => [u.name, u.state, u.share, u.connections, u.probed]),
    [
      ["isp1", "up", 0.75, 17, true],
      ["isp2", "up", 0.25, null, true],
    ],
  );
  assert.equal(st.services[0]?.backends.length, 2);
  assert.equal(st.last_reload_error, null);
  assert.match(st.config_version, /^[0-9a-f]{12}$/);
  await s.d.stop();
});

test("an uplink going down: update, event, metric, hook; disable/enable through the API", async () => {
  const s = await setup();
  await s.d.start();
  s.applied.length = 0;
  s.uplinks.get("isp1")?.set("down", "3 rounds without an answer");
  await s.d.reconciler.idle();
  assert.deepEqual(
    s.applied.map((a) => a.kind),
    ["nft", "routing", "conntrack"],
  );
  const ev = s.d.events.recent().at(-1);
  assert.equal(ev?.kind, "uplink");
  assert.equal(ev?.reason, "3 rounds without an answer");
  const st = await s.d.status();
  assert.deepEqual(
    st.uplinks.map((u) => [u.name, u.state, u.share, u.reason]),
    [
      ["isp1", "down", 0, "3 rounds without an answer"],
      ["isp2", "up", 1, "starting"],
    ],
  );
  const metrics = (await s.d.metrics()).body;
  assert.ok(metrics.includes('nflb_uplink_transitions_total{uplink="isp1",to="down"} 1\n'));
  assert.ok(metrics.includes('nflb_uplink_up{uplink="isp1"} 0\n'));

  // Every uplink down (isp2 disabled by hand): the last data plane stays.
  s.applied.length = 0;
  const r = await s.d.setUplinkEnabled("isp2", false);
  assert.deepEqual(r, {
    ok: true,
    body: { uplink: "isp2", state: "disabled", changed: true, applied: "none" },
  });
  assert.deepEqual(s.applied, []);
  assert.equal((await s.d.status()).keeping_last_data_plane, true);
  assert.equal(s.d.events.recent().at(-1)?.state, "all-down");

  s.uplinks.get("isp1")?.set("up", "10 good rounds");
  await s.d.reconciler.idle();
  assert.deepEqual(
    (await s.d.status()).uplinks.map((u) => u.share),
    [1, 0],
  );
  assert.equal((await s.d.setUplinkEnabled("isp2", true)).ok, true);
  assert.deepEqual(
    (await s.d.status()).uplinks.map((u) => u.share),
    [0.75, 0.25],
  );
  assert.deepEqual(await s.d.setUplinkEnabled("isp9", true), {
    ok: false,
    status: 404,
    error: "no uplink isp9",
  });

  await s.d.stop();
  const uplinkHooks = s.hooks.filter((h) => h.NFLB_KIND === "uplink");
  assert.deepEqual(
    uplinkHooks.map((h) => [h.NFLB_NAME, h.NFLB_STATE]),
    [
      ["isp1", "down"],
      ["isp2", "disabled"],
      ["isp1", "up"],
      ["isp2", "up"],
    ],
  );
  assert.equal(uplinkHooks[0]?.ARGV, "/usr/local/bin/notify --quiet");
  assert.equal(uplinkHooks[0]?.NFLB_REASON, "3 rounds without an answer");
});

test("backends: a check failure and a drain are changes with reasons", async () => {
  const s = await setup();
  await s.d.start();
  s.backends.get("10.1.1.1:80")?.set("down", "connection refused");
  await s.d.reconciler.idle();
  assert.equal((await s.d.setBackendDrained("web", "10.1.1.2", true)).ok, true);
  const b = (await s.d.status()).services[0]?.backends;
  assert.deepEqual(
    b?.map((x) => [x.address, x.state, x.weight, x.reason]),
    [
      ["10.1.1.1:80", "down", 1, "connection refused"],
      ["10.1.1.2:80", "draining", 0, "drained through the API"],
    ],
  );
  assert.equal((await s.d.setBackendDrained("web", "10.9.9.9:80", true)).ok, false);
  assert.equal((await s.d.setBackendDrained("nope", "10.1.1.1:80", true)).ok, false);
  await s.d.stop();
  assert.deepEqual(
    s.hooks.filter((h) => h.NFLB_KIND === "backend").map((h) => [h.NFLB_NAME, h.NFLB_SERVICE, h.NFLB_STATE]),
    [
      ["web/10.1.1.1:80", "web", "down"],
      ["web/10.1.1.2:80", "web", "draining"],
    ],
  );
});

test("reload: an invalid config is refused and reported; a valid one replaces only what changed", async () => {
  const s = await setup();
  await s.d.start();
  const isp1 = s.uplinks.get("isp1");
  const isp2 = s.uplinks.get("isp2");
  await s.d.setUplinkEnabled("isp2", false);
  const before = (await s.d.status()).config_version;

  await writeFile(s.file, CONFIG.replace("weight: 3", "weight: three"));
  const bad = await s.d.reload();
  assert.equal(bad.ok, false);
  const st = await s.d.status();
  assert.match(st.last_reload_error ?? "", /uplinks\.isp1\.weight \(line 3/);
  assert.equal(st.config_version, before, "the running config keeps serving");
  assert.equal(s.d.events.recent().at(-1)?.state, "reload-refused");

  s.applied.length = 0;
  await writeFile(
    s.file,
    CONFIG.replace("gateway: 100.64.2.1, weight: 1", "gateway: 100.64.2.1, weight: 2").replace(
      "services:",
      "  isp3: { interface: wan3, gateway: 100.64.3.1 }\nservices:",
    ),
  );
  assert.deepEqual(await s.d.reload(), { ok: true });
  assert.deepEqual(
    s.applied.map((a) => a.kind),
    ["full"],
  );
  const after = await s.d.status();
  assert.equal(after.last_reload_error, null);
  assert.notEqual(after.config_version, before);
  assert.deepEqual(
    after.uplinks.map((u) => [u.name, u.state]),
    [
      ["isp1", "up"],
      ["isp2", "disabled"],
      ["isp3", "up"],
    ],
    "the API's override survives a reload",
  );
  assert.equal(s.uplinks.get("isp1"), isp1, "unchanged uplink keeps its monitor");
  assert.equal(isp1?.stopped, false);
  assert.equal(isp2?.stopped, true, "a changed uplink gets a new monitor");
  assert.notEqual(s.uplinks.get("isp2"), isp2);
  assert.ok(s.uplinks.get("isp3")?.started);

  await s.d.stop();
  assert.ok([...s.uplinks.values()].every((m) => m.stopped));
  s.applied.length = 0;
  s.uplinks.get("isp1")?.set("down", "after stop");
  await s.d.reconciler.idle();
  assert.deepEqual(s.applied, [], "a stopped daemon changes nothing");
});

test("reload: a valid config the kernel refuses is rolled back", async () => {
  const s = await setup();
  await s.d.start();
  const before = (await s.d.status()).config_version;
  await writeFile(
    s.file,
    CONFIG.replace("services:", "  isp9: { interface: wan9, gateway: 100.64.9.1 }\nservices:"),
  );
  const r = await s.d.reload();
  assert.equal(r.ok, false);
  const st = await s.d.status();
  assert.match(st.last_reload_error ?? "", /failed to apply: nft: no such device wan9/);
  assert.equal(st.config_version, before);
  assert.deepEqual(
    st.uplinks.map((u) => u.name),
    ["isp1", "isp2"],
  );
  assert.equal(s.applied.at(-1)?.kind, "full", "the running config was applied again");
  await s.d.stop();
});

test("an invalid config at start is an error before anything is applied", async () => {
  const dir = await mkdtemp(join(tmpdir(), "nflb-daemon-"));
  const file = join(dir, "bad.yaml");
  await writeFile(file, "version: 1\nuplinks: { isp1: { interface: wan1, weight: -1 } }\n");
  await assert.rejects(
    Daemon.create({ configFile: file, serveApi: false, load: loadConfig, log: silentLog, factories: {} }),
    /uplinks\.isp1\.weight/,
  );
});

test("without a prober, uplinks are assumed up and reported as not probed", async () => {
  const s = await setup();
  const dir = await mkdtemp(join(tmpdir(), "nflb-daemon-"));
  const file = join(dir, "nflb.yaml");
  await writeFile(file, "version: 1\nuplinks: { isp1: { interface: wan1, gateway: 100.64.1.1 } }\n");
  const d = await Daemon.create({
    configFile: file,
    serveApi: false,
    load: loadConfig,
    log: silentLog,
    factories: {},
    ops: idleOps(),
    readCounters: async () => new Map(),
  });
  await d.start();
  const u = (await d.status()).uplinks[0];
  assert.deepEqual([u?.state, u?.probed, u?.reason], ["up", false, "not probed: assumed up"]);
  await d.stop();
  await s.d.stop();
});
