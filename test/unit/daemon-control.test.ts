// The daemon's operator actions beyond the first contract: backend maint (checks stopped) and
// runtime weights, /enable clearing both, overrides kept across a restart, active connections in
// status, and the reload outcome the API answers with.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { Daemon } from "../../src/daemon/daemon.ts";
import { silentLog } from "../../src/daemon/log.ts";
import { fromStored, toStored } from "../../src/daemon/overrides-store.ts";
import { emptyOverrides } from "../../src/daemon/health-view.ts";
import { idleOps } from "../../testkit/dataplane-fakes.ts";
import { FakeFlowMonitor } from "../../testkit/flow-fakes.ts";
import { FakeBackend } from "../../testkit/monitor-fakes.ts";

const CONFIG = `version: 1
services:
  web:
    listen: 203.0.113.10:80
    backends:
      - { address: 10.1.1.1:80, weight: 2 }
      - { address: 10.1.1.2:80 }
  v6:
    listen: "[2001:db8::10]:80"
    backends:
      - { address: "[2001:db8::2]:80" }
`;

async function setup(dir?: string) {
  dir ??= await mkdtemp(join(tmpdir(), "nflb-control-"));
  const file = join(dir, "nflb.yaml");
  await writeFile(file, CONFIG);
  const ops = idleOps();
  const backends: FakeBackend[] = [];
  // conntrack counts the IPv4 service; the IPv6 one is not known (yet).
  const flows = new FakeFlowMonitor();
  flows.counts.set("tcp 203.0.113.10 80", new Map([["10.1.1.1:80", 5]]));
  const d = await Daemon.create({
    configFile: file,
    serveApi: false,
    load: loadConfig,
    log: silentLog,
    ops,
    readCounters: async () => new Map([["svc_web_b0", { packets: 40, bytes: 0 }]]),
    readLinkBytes: async () => null,
    backendCounter: (svc, b) => (svc === "web" && b === "10.1.1.1:80" ? "svc_web_b0" : null),
    overridesFile: join(dir, "overrides.json"),
    factories: {
      backend: ({ service, backend }) => {
        const m = new FakeBackend(service, backend.address);
        backends.push(m);
        return m;
      },
      flows: () => flows,
    },
  });
  const monitorOf = (svc: string, b: string) =>
    backends.filter((m) => m.obs.service === svc && m.obs.backend === b && !m.stopped);
  return { d, dir, file, backends, monitorOf, flows };
}

const backend = async (d: Daemon, svc: string, address: string) => {
  const s = await d.status();
  const b = s.services.find((x) => x.name === svc)?.backends.find((x) => x.address === address);
  assert.ok(b, `${svc}/${address} in status`);
  return b;
};

test("status: connections held now (conntrack) and the cumulative count apart", async () => {
  const s = await setup();
  await s.d.start();
  const b = await backend(s.d, "web", "10.1.1.1:80");
  assert.equal(b.connections, 5);
  assert.equal(b.connections_total, 40);
  assert.equal(b.configured_weight, 2);
  assert.equal((await backend(s.d, "web", "10.1.1.2:80")).connections, 0);
  // A service conntrack cannot count reports null rather than a made-up 0.
  assert.equal((await backend(s.d, "v6", "[2001:db8::2]:80")).connections, null);
  assert.ok(s.flows.started, "one conntrack event stream while the config has services");
  const m = await s.d.metrics();
  assert.match(m.body, /nflb_backend_active_connections\{service="web",backend="10.1.1.1:80"\} 5/);
  await s.d.stop();
  await rm(s.dir, { recursive: true, force: true });
});

test("maint: no new connections, checks stopped; enable clears it and restarts the checks", async () => {
  const s = await setup();
  await s.d.start();
  const first = s.monitorOf("web", "10.1.1.1:80")[0];
  assert.ok(first?.started);
  const r = await s.d.setBackendMaint("web", "10.1.1.1");
  assert.deepEqual(r, {
    ok: true,
    body: { service: "web", backend: "10.1.1.1:80", state: "maint", changed: true, applied: "update" },
  });
  assert.equal(first.stopped, true, "its check stopped");
  assert.deepEqual(s.monitorOf("web", "10.1.1.1:80"), []);
  const b = await backend(s.d, "web", "10.1.1.1:80");
  assert.deepEqual([b.state, b.weight, b.reason], ["maint", 0, "maint through the API (checks stopped)"]);
  const planned = s.d.reconciler.last?.desired.services?.services[0]?.backends[0];
  assert.equal(planned?.weight, 0, "no new connections");
  // The other backend is still checked.
  assert.equal(s.monitorOf("web", "10.1.1.2:80").length, 1);

  // drain and maint exclude each other; enable clears whichever is set.
  await s.d.setBackendDrained("web", "10.1.1.1:80", true);
  assert.equal((await backend(s.d, "web", "10.1.1.1:80")).state, "draining");
  assert.equal(s.monitorOf("web", "10.1.1.1:80").length, 1, "checks again while draining");
  await s.d.setBackendMaint("web", "10.1.1.1:80");
  const en = await s.d.setBackendDrained("web", "10.1.1.1:80", false);
  assert.equal(en.ok && en.body.state, "up");
  const again = s.monitorOf("web", "10.1.1.1:80");
  assert.equal(again.length, 1);
  assert.ok(again[0]?.started && again[0] !== first, "a fresh check after maint");
  assert.equal((await backend(s.d, "web", "10.1.1.1:80")).weight, 2);

  assert.equal((await s.d.setBackendMaint("web", "10.9.9.9:80")).ok, false);
  assert.equal((await s.d.setBackendMaint("__proto__", "10.1.1.1:80")).ok, false);
  await s.d.stop();
  await rm(s.dir, { recursive: true, force: true });
});

test("runtime weight: replaces the configured one; drain still wins; 0 means draining", async () => {
  const s = await setup();
  await s.d.start();
  const r = await s.d.setBackendWeight("web", "10.1.1.1:80", 7);
  assert.ok(r.ok);
  let b = await backend(s.d, "web", "10.1.1.1:80");
  assert.deepEqual([b.state, b.weight, b.configured_weight], ["up", 7, 2]);
  assert.match(b.reason, /weight 7 set through the API/);
  await s.d.setBackendDrained("web", "10.1.1.1:80", true);
  assert.equal((await backend(s.d, "web", "10.1.1.1:80")).weight, 0);
  await s.d.setBackendDrained("web", "10.1.1.1:80", false);
  assert.equal((await backend(s.d, "web", "10.1.1.1:80")).weight, 7, "enable keeps the runtime weight");
  await s.d.setBackendWeight("web", "10.1.1.1:80", 0);
  b = await backend(s.d, "web", "10.1.1.1:80");
  assert.deepEqual([b.state, b.weight], ["draining", 0]);
  await s.d.stop();
  await rm(s.dir, { recursive: true, force: true });
});

test("overrides survive a restart (atomic file), for the names the config still has", async () => {
  const s = await setup();
  await s.d.start();
  await s.d.setBackendMaint("web", "10.1.1.1:80");
  await s.d.setBackendWeight("v6", "2001:db8::2", 3);
  await s.d.stop();
  const saved = JSON.parse(await readFile(join(s.dir, "overrides.json"), "utf8")) as unknown;
  assert.deepEqual(saved, {
    version: 1,
    disabled_uplinks: [],
    drained: {},
    maint: { web: ["10.1.1.1:80"] },
    weights: { v6: { "[2001:db8::2]:80": 3 } },
  });

  const t = await setup(s.dir);
  await t.d.start();
  const b = await backend(t.d, "web", "10.1.1.1:80");
  assert.equal(b.state, "maint");
  assert.deepEqual(t.monitorOf("web", "10.1.1.1:80"), [], "no check started for a backend in maint");
  assert.equal((await backend(t.d, "v6", "[2001:db8::2]:80")).weight, 3);
  assert.equal(t.d.reconciler.last?.desired.services?.services[0]?.backends[0]?.weight, 0);
  await t.d.stop();
  await rm(s.dir, { recursive: true, force: true });
});

test("the overrides file: junk is dropped, never trusted", () => {
  const o = emptyOverrides();
  o.disabledUplinks.add("isp1");
  o.maint.set("web", new Set(["10.1.1.1:80"]));
  o.weights.set("web", new Map([["10.1.1.2:80", 4]]));
  assert.deepEqual(toStored(fromStored(toStored(o))), toStored(o));
  const junk = fromStored({
    version: 1,
    disabled_uplinks: ["ok", 5, "x".repeat(500)],
    drained: { web: "not a list" },
    maint: [],
    weights: { web: { a: -1, b: 1.5, c: 20_000, d: 3 } },
  });
  assert.deepEqual(toStored(junk), {
    version: 1,
    disabled_uplinks: ["ok"],
    drained: {},
    maint: {},
    weights: { web: { d: 3 } },
  });
  assert.deepEqual(toStored(fromStored({ version: 2, disabled_uplinks: ["a"] })).disabled_uplinks, []);
  assert.deepEqual(toStored(fromStored(null)).disabled_uplinks, []);
});

test("reload outcome: config errors name the path and line; success says the version", async () => {
  const s = await setup();
  await s.d.start();
  await writeFile(s.file, CONFIG.replace("weight: 2", "weight: heavy"));
  const bad = await s.d.reloadConfig();
  assert.equal(bad.ok, false);
  assert.ok(!bad.ok && bad.kind === "config");
  assert.match(bad.error, /services\.web\.backends\[0\]\.weight \(line 6/);
  assert.equal(bad.file, s.file);
  assert.deepEqual(
    bad.issues?.map((i) => [i.path.join("."), i.line]),
    [["services.web.backends.0.weight", 6]],
  );
  await writeFile(s.file, CONFIG.replace("weight: 2", "weight: 4"));
  const good = await s.d.reloadConfig();
  assert.ok(good.ok);
  assert.equal(good.config_version, (await s.d.status()).config_version);
  assert.equal(good.applied, "full");
  await s.d.stop();
  await rm(s.dir, { recursive: true, force: true });
});
