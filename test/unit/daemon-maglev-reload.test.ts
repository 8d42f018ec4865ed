// The daemon plans a reload from the plan in force (src/daemon/reconciler.ts → desiredState's
// `previous`): a config edit that removes a maglev backend moves only that backend's slots.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Config } from "../../src/config/schema.ts";
import { Reconciler } from "../../src/daemon/reconciler.ts";
import { silentLog } from "../../src/daemon/log.ts";
import { idleOps } from "../../testkit/dataplane-fakes.ts";
import { webService } from "../../testkit/service-config.ts";

const ops = idleOps();

test("a reload that removes a maglev backend moves only that backend's slots", async () => {
  const all = Array.from({ length: 9 }, (_, i) => `198.51.100.${i + 1}:443`);
  let config: Config = webService(all);
  const r = new Reconciler(
    () => ({ config, health: { uplinks: {}, services: {} }, probeDown: new Set() }),
    ops,
    {
      log: silentLog,
    },
  );
  assert.equal((await r.reconcile("start")).action, "full");
  const before = r.last?.desired.services?.services[0]?.slots ?? [];
  const gone = all[3] ?? "";
  config = webService(all.filter((b) => b !== gone));
  assert.equal((await r.reconcile("reload")).action, "full");
  const after = r.last?.desired.services?.services[0]?.slots ?? [];
  assert.equal(after.length, before.length);
  let moved = 0;
  for (let i = 0; i < before.length; i++) {
    if (before[i] === gone) assert.notEqual(after[i], gone);
    else if (after[i] !== before[i]) moved++;
  }
  assert.equal(moved, 0);
});
