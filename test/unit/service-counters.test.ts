// The services' per-backend counters are set elements; `nft -j list set` → the keys status and
// metrics look up (the same key the daemon computes from the config).
import { test } from "node:test";
import assert from "node:assert/strict";
import { elementCounters, Totals } from "../../src/system/service-counters.ts";
import { backendCounterKey } from "../../src/nft/names.ts";

test("elements of a counter set become the backend's key, with canonical addresses", () => {
  const item = {
    set: {
      family: "inet",
      name: "svc_conns6",
      table: "nflb",
      elem: [
        {
          elem: {
            val: { concat: ["2001:db8:0:0::10", "udp", 53, "2001:DB8:51::11", 5353] },
            counter: { packets: 7, bytes: 700 },
          },
        },
        {
          elem: {
            val: { concat: ["203.0.113.10", "tcp", 80, "198.51.100.11", 80] },
            counter: { packets: 3, bytes: 180 },
          },
        },
        // Not ours: wrong shape or not an address.
        { elem: { val: { concat: ["203.0.113.10", "tcp", 80] }, counter: { packets: 1, bytes: 1 } } },
        { elem: { val: { concat: ["x", "tcp", 80, "y", 80] }, counter: { packets: 1, bytes: 1 } } },
        "junk",
      ],
    },
  };
  assert.deepEqual(elementCounters(item), [
    [backendCounterKey(6, "2001:db8::10", "udp", 53, "2001:db8:51::11", 5353), { packets: 7, bytes: 700 }],
    [backendCounterKey(4, "203.0.113.10", "tcp", 80, "198.51.100.11", 80), { packets: 3, bytes: 180 }],
  ]);
  assert.deepEqual(elementCounters({ set: {} }), []);
  assert.deepEqual(elementCounters({}), []);
});

test("totals stay monotonic when a dynamic element expires or is made again", () => {
  const t = new Totals();
  const c = (packets: number) => ({ packets, bytes: packets * 100 });
  assert.deepEqual(t.add(new Map([["a", c(5)]])).get("a"), c(5));
  assert.deepEqual(t.add(new Map([["a", c(7)]])).get("a"), c(7));
  // Expired (no element): the total stays.
  assert.deepEqual(t.add(new Map()).get("a"), c(7));
  // Made again from its next packet on: counts on from the total.
  assert.deepEqual(t.add(new Map([["a", c(2)]])).get("a"), c(9));
  // Expired and made again between two reads, below its last value.
  assert.deepEqual(t.add(new Map([["a", c(1)]])).get("a"), c(10));
  assert.equal(t.add(new Map()).size, 1);
});
