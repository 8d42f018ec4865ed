// The daemon's first plan deals maglev services from the live table (DataplaneOps.servicesSeed);
// later plans from the plan in force, without reading the kernel again.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { allHealthy, desiredState, type Desired } from "../../src/plan/desired.ts";
import { maglevSeed } from "../../src/plan/maglev-seed.ts";
import type { Facts } from "../../src/plan/types.ts";
import { Reconciler } from "../../src/daemon/reconciler.ts";
import { silentLog } from "../../src/daemon/log.ts";
import { idleOps } from "../../testkit/dataplane-fakes.ts";

const facts: Facts = { interfaces: new Map() };
const yaml = (n: number) =>
  parseConfig(`version: 1
services:
  mg:
    listen: 203.0.113.10:80
    scheduler: maglev
    check: { method: none }
    backends:
${Array.from({ length: n }, (_, i) => `      - { address: 198.51.100.${i + 1}:80 }`).join("\n")}
`);

test("the first plan is dealt from the live slots; later ones from the plan in force", async () => {
  // The table in force: dealt by an edit from 3 backends to 4 (not what a plain population gives).
  const c3 = yaml(3);
  const c4 = yaml(4);
  const inForce = desiredState(c4, allHealthy(c4), facts, desiredState(c3, allHealthy(c3), facts).services);
  const cfg = yaml(4);
  let seeds = 0;
  const applied: Desired[] = [];
  const ops = idleOps({
    readFacts: async () => facts,
    applyFull: async (d: Desired) => {
      applied.push(d);
    },
    servicesSeed: async (c) => {
      seeds++;
      return maglevSeed(c, inForce.nft);
    },
  });
  const r = new Reconciler(() => ({ config: cfg, health: allHealthy(cfg), probeDown: new Set() }), ops, {
    log: silentLog,
  });
  await r.reconcile("start");
  const slots = (d?: Desired) => d?.services?.services[0]?.slots;
  assert.deepEqual(slots(applied[0]), slots(inForce));
  await r.reconcile("again");
  assert.equal(seeds, 1, "the kernel is read for the first plan only");
});
