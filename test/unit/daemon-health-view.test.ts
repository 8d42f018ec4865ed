import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import type { BackendObservation, UplinkObservation } from "../../src/health/types.ts";
import { autoLevel, effectiveWeight } from "../../src/daemon/auto-weights.ts";
import {
  backendState,
  buildHealthView,
  emptyOverrides,
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
