import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import type { BackendObservation, UplinkObservation } from "../../src/health/types.ts";
import { autoLevel, effectiveWeight } from "../../src/daemon/auto-weights.ts";
import {
  backendState,
  buildHealthView,
  emptyOverrides,
  HealthMemo,
  findBackend,
  uplinkState,
} from "../../src/daemon/health-view.ts";

const cfg = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, weight: 3 }
  isp2: { interface: wan2, gateway: 100.64.2.1, weight: 1 }
services:
  web:
    listen: 203.0.113.10:80
    backends:
      - { address: 10.1.1.1:80 }
      - { address: 10.1.1.2:80, weight: 2 }
      - { address: 10.1.1.3:80, weight: 0 }
  web6:
    listen: "[2001:db8::10]:80"
    backends:
      - { address: "[2001:db8::5]:80", weight: 2 }
`);

const obs = (name: string, state: "up" | "down", quality = 1): UplinkObservation => ({
  name,
  state,
  reason: "test",
  rttMs: 10,
  jitterMs: 1,
  loss: 0,
  quality,
  since: 0,
});

test("observations and overrides make the planner's health view", () => {
  const o = emptyOverrides();
  const ups = new Map([["isp1", obs("isp1", "down")]]);
  const backends = new Map<string, Map<string, BackendObservation>>([
    [
      "web",
      new Map([
        ["10.1.1.1:80", { service: "web", backend: "10.1.1.1:80", state: "down", reason: "", since: 0 }],
      ]),
    ],
  ]);
  o.drained.set("web", new Set(["10.1.1.2:80"]));
  const v = buildHealthView(cfg, ups, backends, o);
  assert.deepEqual(v.uplinks, { isp1: { up: false, weight: 3 }, isp2: { up: true, weight: 1 } });
  assert.deepEqual(v.services.web, {
    "10.1.1.1:80": { up: false, weight: 1 },
    "10.1.1.2:80": { up: true, weight: 0 },
    "10.1.1.3:80": { up: true, weight: 0 },
  });
  assert.deepEqual(v.services.web6, { "[2001:db8::5]:80": { up: true, weight: 2 } });
  o.disabledUplinks.add("isp2");
  assert.equal(buildHealthView(cfg, ups, backends, o).uplinks.isp2?.up, false);
  assert.equal(uplinkState("isp2", undefined, o), "disabled");
  assert.equal(uplinkState("isp1", ups.get("isp1"), o), "down");
  assert.equal(backendState("web", "10.1.1.3:80", 0, undefined, o), "draining");
  assert.equal(backendState("web", "10.1.1.2:80", 2, undefined, o), "draining");
  assert.equal(backendState("web6", "[2001:db8::5]:80", 2, undefined, o), "up");
});

test("weights: auto scales the configured weight by a sticky quality level", () => {
  assert.equal(autoLevel(undefined, 1), 10);
  assert.equal(autoLevel(undefined, 0), 1, "never below 1: a poor link still gets a little");
  assert.equal(autoLevel(10, 0.94), 10, "a small dip does not move the level");
  assert.equal(autoLevel(10, 0.9), 9);
  assert.equal(autoLevel(9, 0.96), 9);
  assert.equal(autoLevel(9, 0.99), 10);
  assert.equal(autoLevel(undefined, Number.NaN), 10);
  assert.equal(effectiveWeight(3, 7), 21);
  assert.equal(effectiveWeight(3, undefined), 3);
  const auto = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, weight: 3 }
balance: { weights: auto }
`);
  const v = buildHealthView(auto, new Map(), new Map(), emptyOverrides(), new Map([["isp1", 5]]));
  assert.deepEqual(v.uplinks.isp1, { up: true, weight: 15 });
});

test("an API caller may name a backend in any equivalent form", () => {
  assert.equal(findBackend(cfg, "web", "10.1.1.1:80"), "10.1.1.1:80");
  assert.equal(findBackend(cfg, "web6", "[2001:db8:0::5]:80"), "[2001:db8::5]:80");
  assert.equal(findBackend(cfg, "web6", "2001:db8::5"), "[2001:db8::5]:80");
  assert.equal(findBackend(cfg, "web", "10.1.1.1"), "10.1.1.1:80");
  assert.equal(findBackend(cfg, "web", "10.1.1.1:81"), null);
  assert.equal(findBackend(cfg, "web", "nonsense"), null);
  assert.equal(findBackend(cfg, "nope", "10.1.1.1:80"), null);
});

test("with a memo, the services container is patched: unchanged records stay, a changed one is replaced, earlier records are never changed", () => {
  const memo = new HealthMemo();
  const o = emptyOverrides();
  const backends = new Map<string, Map<string, BackendObservation>>();
  const first = buildHealthView(cfg, new Map(), backends, o, new Map(), () => null, memo);
  const web = first.services.web;
  const web6 = first.services.web6;
  assert.ok(web && web6);

  const down: BackendObservation = {
    service: "web",
    backend: "10.1.1.1:80",
    state: "down",
    reason: "test",
    since: 0,
  };
  backends.set("web", new Map([["10.1.1.1:80", down]]));
  memo.touch("web");
  const second = buildHealthView(cfg, new Map(), backends, o, new Map(), () => null, memo);
  assert.equal(second.services, first.services, "the same container for the same config");
  assert.equal(second.services.web6, web6, "an unchanged service keeps its record");
  assert.notEqual(second.services.web, web, "a changed service gets a new record");
  assert.equal(second.services.web?.["10.1.1.1:80"]?.up, false);
  assert.equal(web["10.1.1.1:80"]?.up, true, "the earlier record is untouched");

  const other = parseConfig(
    `version: 1\nservices:\n  web:\n    listen: 203.0.113.10:80\n    backends: [{ address: 10.1.1.1:80 }]\n`,
  );
  const third = buildHealthView(other, new Map(), new Map(), o, new Map(), () => null, memo);
  assert.notEqual(third.services, first.services, "a new config, a new container");
  assert.deepEqual(Object.keys(third.services), ["web"]);
});
