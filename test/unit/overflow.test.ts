import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { configWarnings } from "../../src/config/warnings.ts";
import { formatBitrate, parseBitrate } from "../../src/config/bitrate.ts";
import { allHealthy } from "../../src/plan/desired.ts";
import { planUplinks } from "../../src/plan/uplinks.ts";
import { steerWeights } from "../../src/plan/steer-weights.ts";
import type { Health } from "../../src/plan/types.ts";
import { initialLoad, loadRatio, sampleLoad, spillStep } from "../../src/health/link-load.ts";
import { LinkLoad } from "../../src/daemon/overflow.ts";
import { issuesOf } from "../../testkit/config-text.ts";
import { wanFacts } from "../../testkit/dataplane-fakes.ts";

const base = `version: 1
uplinks:
  isp1:
    interface: wan1
    gateway: 100.64.1.1
    capacity: { down: 10Mbit, up: 10Mbit }
  isp2:
    interface: wan2
    gateway: 100.64.2.1
    capacity: 5M
  isp3:
    interface: wan3
    gateway: 100.64.3.1
    metered: true
balance:
  method: overflow
`;

const up = (...names: string[]): Health =>
  Object.fromEntries(["isp1", "isp2", "isp3"].map((n) => [n, { up: names.includes(n) }]));
const weights = (h: Health) => Object.fromEntries(Object.entries(h).map(([n, x]) => [n, x.weight]));

test("rates: units as tc and ISPs write them, bytes refused", () => {
  assert.equal(parseBitrate("10Mbit"), 10_000_000);
  assert.equal(parseBitrate("5M"), 5_000_000);
  assert.equal(parseBitrate("512k"), 512_000);
  assert.equal(parseBitrate("1.5G"), 1_500_000_000);
  assert.equal(parseBitrate("100Mbit/s"), 100_000_000);
  assert.equal(parseBitrate(2_000_000), 2_000_000);
  assert.match((parseBitrate("10MB") as { error: string }).error, /in bits, like 10Mbit/);
  assert.match((parseBitrate("10mbps") as { error: string }).error, /in bits/);
  assert.match((parseBitrate("fast") as { error: string }).error, /like 10Mbit/);
  assert.match((parseBitrate("10") as { error: string }).error, /out of range/);
  assert.equal(formatBitrate(10_000_000), "10Mbit");
  assert.equal(formatBitrate(1_500_000), "1.5Mbit");
});

test("capacity, metered, priority and overflow parse with their defaults", () => {
  const c = parseConfig(base);
  assert.deepEqual(c.uplinks?.isp1?.capacity, { down: 10_000_000, up: 10_000_000 });
  assert.deepEqual(c.uplinks?.isp2?.capacity, { down: 5_000_000, up: 5_000_000 });
  assert.equal(c.uplinks?.isp3?.capacity, undefined);
  assert.equal(c.uplinks?.isp3?.metered, true);
  assert.equal(c.uplinks?.isp1?.metered, false);
  assert.deepEqual(c.balance.overflow, { threshold: 0.8, recover: 0.7, interval: 500, smoothing: 1000 });
});

test("a bad capacity or overflow names its path and line", () => {
  const [i] = issuesOf(base.replace("capacity: 5M", "capacity: 5MB"));
  assert.deepEqual(i?.path, ["uplinks", "isp2", "capacity"]);
  assert.equal(i?.line, 10);
  assert.match(i?.message ?? "", /in bits/);
  const [j] = issuesOf(base.replace("up: 10Mbit", "up: lots"));
  assert.deepEqual(j?.path, ["uplinks", "isp1", "capacity", "up"]);
  assert.equal(j?.line, 6);
  const [k] = issuesOf(base + "  overflow: { threshold: 0.6, recover: 0.7 }\n");
  assert.deepEqual(k?.path, ["balance", "overflow", "recover"]);
  assert.equal(k?.line, 17);
  assert.match(k?.message ?? "", /below threshold/);
});

test("warnings: overflow with no capacity at all, every uplink metered", () => {
  const none = parseConfig(base.replace(/ {4}capacity: .*\n/g, ""));
  assert.ok(configWarnings(none).some((w) => /overflow without any capacity/.test(w.message)));
  assert.ok(!configWarnings(parseConfig(base)).some((w) => /capacity/.test(w.message)));
  const all = parseConfig(base.replace(/ {4}capacity: .*\n/g, "    metered: true\n"));
  assert.ok(configWarnings(all).some((w) => /every uplink is metered/.test(w.message)));
});

test("overflow: the first uplink by priority fills; a spilling one passes new connections on", () => {
  const c = parseConfig(base);
  assert.deepEqual(weights(steerWeights(c, up("isp1", "isp2", "isp3"))), { isp1: 1, isp2: 0, isp3: 0 });
  const s1 = new Set(["isp1"]);
  assert.deepEqual(weights(steerWeights(c, up("isp1", "isp2", "isp3"), s1)), { isp1: 0, isp2: 1, isp3: 0 });
  // Everything full: share by capacity (10:5), still never the metered one.
  const both = new Set(["isp1", "isp2"]);
  assert.deepEqual(weights(steerWeights(c, up("isp1", "isp2", "isp3"), both)), {
    isp1: 100,
    isp2: 50,
    isp3: 0,
  });
  // isp1 down: isp2 fills.
  assert.deepEqual(weights(steerWeights(c, up("isp2", "isp3"))), { isp1: 0, isp2: 1, isp3: 0 });
  // Explicit priority reorders; equal priorities share by weight.
  const p = parseConfig(base.replace("capacity: 5M", "capacity: 5M\n    priority: 1\n    weight: 2") + "");
  assert.deepEqual(weights(steerWeights(p, up("isp1", "isp2", "isp3"))), { isp1: 1, isp2: 2, isp3: 0 });
  const q = parseConfig(base.replace("capacity: 5M", "capacity: 5M\n    priority: 0"));
  assert.deepEqual(weights(steerWeights(q, up("isp1", "isp2", "isp3"))), { isp1: 0, isp2: 1, isp3: 0 });
});

test("metered: only when every unmetered uplink is down, in any method", () => {
  for (const method of ["overflow", "random", "source-hash"]) {
    const c = parseConfig(base.replace("method: overflow", `method: ${method}`));
    assert.equal(steerWeights(c, up("isp1", "isp2", "isp3")).isp3?.weight, 0, method);
    assert.deepEqual(weights(steerWeights(c, up("isp3"))), { isp1: 0, isp2: 0, isp3: 1 }, method);
  }
  // No metered uplink and no overflow: health passes through unchanged (plans stay byte-identical).
  const plain = parseConfig(base.replace("method: overflow", "method: random").replace("metered: true", ""));
  const h = up("isp1", "isp2");
  assert.equal(steerWeights(plain, h), h);
});

test("apply (every uplink healthy): the split holds the first uplink only; rules still reach isp3", () => {
  const c = parseConfig(base + "rules:\n  - { name: big, port: 873, protocol: tcp, via: [isp3] }\n");
  const facts = wanFacts();
  const p = planUplinks(c, allHealthy(c).uplinks, facts);
  assert.equal(p?.split4?.method, "random");
  assert.deepEqual(p?.split4?.slots, ["isp1"]);
  assert.deepEqual(p?.rules[0]?.target, { kind: "uplink", uplink: "isp3" });
  const hashed = parseConfig(base.replace("method: overflow", "method: source-hash"));
  const h = planUplinks(hashed, allHealthy(hashed).uplinks, facts);
  assert.ok(!h?.split4?.slots.includes("isp3"));
  assert.ok(h?.split4?.slots.includes("isp2"));
});

test("load: bit/s from byte counters, smoothed; hysteresis between threshold and recover", () => {
  let s = sampleLoad(initialLoad(), { rx: 0, tx: 0 }, 0, 1000);
  assert.equal(s.down, null);
  s = sampleLoad(s, { rx: 625_000, tx: 125_000 }, 500, 1000); // 10 Mbit/s down, 2 up
  assert.equal(s.down, 10_000_000);
  assert.equal(s.up, 2_000_000);
  s = sampleLoad(s, { rx: 625_000, tx: 125_000 }, 1000, 1000); // idle for 500 ms
  assert.ok(Math.abs((s.down ?? 0) - 10_000_000 * Math.exp(-0.5)) < 1);
  // Counters that go backwards (a re-created interface) restart the rate, not a negative one.
  const r = sampleLoad(s, { rx: 10, tx: 10 }, 1500, 1000);
  assert.equal(r.down, s.down);
  assert.equal(sampleLoad(s, null, 1500, 1000).down, null);
  assert.equal(loadRatio({ down: 9e6, up: 1e6 }, { down: 10e6, up: 10e6 }), 0.9);
  assert.equal(loadRatio({ down: 1e6, up: 4e6 }, { up: 5e6 }), 0.8);
  assert.equal(loadRatio({ down: 1e6, up: 4e6 }, undefined), null);
  assert.equal(spillStep(false, 0.85, 0.8, 0.7), true);
  assert.equal(spillStep(true, 0.75, 0.8, 0.7), true, "between recover and threshold: stays");
  assert.equal(spillStep(true, 0.69, 0.8, 0.7), false);
  assert.equal(spillStep(false, 0.79, 0.8, 0.7), false);
});

test("LinkLoad samples interface counters and reports each crossing once", async () => {
  const c = parseConfig(base);
  const bytes = new Map([["wan1", { rx: 0, tx: 0 }]]);
  let now = 0;
  const changes: string[] = [];
  const ll = new LinkLoad({
    read: async (iface) => bytes.get(iface) ?? null,
    changed: (n, spilling) => changes.push(`${n} ${spilling ? "spilling" : "filling"}`),
    now: () => now,
  });
  ll.configure(c);
  try {
    await ll.tick();
    for (let i = 1; i <= 10; i++) {
      now = i * 500;
      bytes.set("wan1", { rx: i * 593_750, tx: 0 }); // 9.5 Mbit/s
      await ll.tick();
    }
    assert.deepEqual(changes, ["isp1 spilling"]);
    assert.deepEqual([...ll.spilling()], ["isp1"]);
    assert.equal(ll.view("isp1")?.spilling, true);
    for (let i = 11; i <= 20; i++) {
      now = i * 500;
      await ll.tick(); // idle
    }
    assert.deepEqual(changes, ["isp1 spilling", "isp1 filling"]);
    assert.equal(ll.view("isp3")?.ratio, null);
  } finally {
    ll.stop();
  }
});
