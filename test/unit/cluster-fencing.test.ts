import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  claimAllowed,
  fenceTiming,
  leaseFence,
  outageHold,
  outageRenewAllowed,
  renewal,
  reportMaxAge,
  type WitnessReport,
} from "../../src/cluster/fencing.ts";

const t = fenceTiming(2000);
const rep = (node: string, etcd: boolean, receivedAt: number): [string, WitnessReport] => [
  node,
  { node, etcd, receivedAt },
];

describe("cluster fencing", () => {
  test("timing for a 2 s lease", () => {
    assert.deepEqual(t, { leaseMs: 2000, grantedMs: 2000, marginMs: 333, tickMs: 500 });
    assert.equal(outageHold(t), 1667);
  });

  test("the kernel fence ends before etcd can expire the lease", () => {
    for (const granted of [1000, 2000, 3000]) {
      const tt = fenceTiming(2000, granted);
      assert.ok(leaseFence(tt, 10_000) <= 10_000 + Math.min(2000, granted) - tt.marginMs);
    }
  });

  test("renewal: normal while the lease is confirmed, fenced once it may have lapsed", () => {
    assert.deepEqual(renewal(t, { lastOkSentAt: 1000, etcdOk: true, outageAllowed: false }, 1200), {
      mode: "normal",
      until: 2667,
    });
    assert.deepEqual(renewal(t, { lastOkSentAt: 1000, etcdOk: true, outageAllowed: false }, 2650), {
      mode: "fenced",
      until: null,
    });
    assert.deepEqual(renewal(t, { lastOkSentAt: 1000, etcdOk: false, outageAllowed: false }, 1200), {
      mode: "fenced",
      until: null,
    });
    assert.deepEqual(renewal(t, { lastOkSentAt: null, etcdOk: true, outageAllowed: true }, 1200), {
      mode: "fenced",
      until: null,
    });
    assert.deepEqual(renewal(t, { lastOkSentAt: 1000, etcdOk: false, outageAllowed: true }, 5000), {
      mode: "outage",
      until: 6667,
    });
  });

  test("outage mode needs every other member to say, recently, that etcd is gone", () => {
    const view = ["a", "b", "c"];
    const now = 10_000;
    const fresh = now - 100;
    assert.equal(
      outageRenewAllowed(t, "a", view, new Map([rep("b", false, fresh), rep("c", false, fresh)]), now),
      true,
    );
    assert.equal(
      outageRenewAllowed(t, "a", view, new Map([rep("b", false, fresh), rep("c", true, fresh)]), now),
      false,
      "c reaches etcd: a may be cut off",
    );
    assert.equal(outageRenewAllowed(t, "a", view, new Map([rep("b", false, fresh)]), now), false, "c silent");
    const stale = now - reportMaxAge(t) - 1;
    assert.equal(
      outageRenewAllowed(t, "a", view, new Map([rep("b", false, fresh), rep("c", false, stale)]), now),
      false,
    );
    assert.equal(outageRenewAllowed(t, "a", ["a"], new Map(), now), false, "alone: nobody can vouch");
  });

  test("a node that said 'no etcd' claims nothing until every renewal made on its word has run out", () => {
    const said = 10_000;
    const wait = reportMaxAge(t) + outageHold(t) + t.marginMs;
    assert.equal(claimAllowed(t, said, said + wait - 1), false);
    assert.equal(claimAllowed(t, said, said + wait), true);
    assert.equal(claimAllowed(t, -Infinity, 0), true);
  });

  test("no overlap: a peer renewing on a report never outlasts the reporter's claim wait", () => {
    for (const lease of [1000, 2000, 5000]) {
      const tt = fenceTiming(lease);
      const reportSent = 0;
      const lastRenewal = reportSent + reportMaxAge(tt); // latest use of that report
      const kernelEnd = lastRenewal + outageHold(tt);
      const firstClaim = reportSent + reportMaxAge(tt) + outageHold(tt) + tt.marginMs;
      assert.ok(kernelEnd + tt.marginMs <= firstClaim);
    }
  });
});
