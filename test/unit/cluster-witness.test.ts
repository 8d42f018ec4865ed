import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { encodeReport, Witness, witnessKey, type WitnessRejection } from "../../src/cluster/witness.ts";

const KEY = Buffer.from("0123456789abcdef0123456789abcdef");
const members = new Map([
  ["b", "192.0.2.12"],
  ["c", "192.0.2.13"],
]);

function witness(wall: { t: number }) {
  const rejected: WitnessRejection[] = [];
  const w = new Witness(
    "lab",
    "a",
    { address: "192.0.2.11", port: 9111 },
    {
      key: KEY,
      addressOf: (n) => members.get(n),
      windowMs: 1500,
      wallNow: () => wall.t,
      onReject: (why) => rejected.push(why),
    },
    () => 42,
  );
  return { w, rejected };
}

describe("cluster witness reports", () => {
  const k = witnessKey(KEY, "lab");

  test("a report signed with the cluster key, from the member's address, is taken", () => {
    const wall = { t: 1_000_000 };
    const { w, rejected } = witness(wall);
    assert.ok(w.receive(encodeReport(k, "lab", "b", false, wall.t), "192.0.2.12"));
    assert.ok(w.receive(encodeReport(k, "lab", "c", true, wall.t - 200), "::ffff:192.0.2.13"));
    assert.deepEqual(w.reports.get("b"), { node: "b", etcd: false, receivedAt: 42 });
    assert.equal(w.reports.get("c")?.etcd, true);
    assert.deepEqual(rejected, []);
  });

  test("a forged 'no etcd' report is ignored: wrong key, wrong sender, replayed, stale, other cluster", () => {
    const wall = { t: 2_000_000 };
    const { w, rejected } = witness(wall);
    const other = witnessKey(Buffer.from("another key, not the cluster's!!"), "lab");
    assert.ok(!w.receive(encodeReport(other, "lab", "b", false, wall.t), "192.0.2.12"));
    // The right key for another cluster name does not carry over either.
    assert.ok(!w.receive(encodeReport(witnessKey(KEY, "db"), "lab", "b", false, wall.t), "192.0.2.12"));
    assert.ok(!w.receive(encodeReport(k, "lab", "b", false, wall.t), "192.0.2.99"));
    assert.ok(!w.receive(encodeReport(k, "lab", "x", false, wall.t), "192.0.2.12"));
    assert.ok(!w.receive(encodeReport(k, "lab", "b", false, wall.t - 5000), "192.0.2.12"));
    assert.ok(!w.receive(encodeReport(k, "lab", "b", false, wall.t + 5000), "192.0.2.12"));
    assert.ok(!w.receive(encodeReport(k, "db", "b", false, wall.t), "192.0.2.12"));
    const good = encodeReport(k, "lab", "b", true, wall.t);
    assert.ok(w.receive(good, "192.0.2.12"));
    assert.ok(!w.receive(good, "192.0.2.12"), "the same datagram twice");
    // Tampering with a signed report: flip etcd to false.
    const tampered = Buffer.from(good.toString().replace('"etcd":true', '"etcd":false'));
    assert.ok(!w.receive(tampered, "192.0.2.12"));
    assert.ok(
      !w.receive(Buffer.from('{"nflb":"witness","cluster":"lab","node":"b","etcd":false}'), "192.0.2.12"),
    );
    assert.ok(!w.receive(Buffer.from("x".repeat(600)), "192.0.2.12"));
    assert.equal(w.reports.get("b")?.etcd, true, "only the genuine report counts");
    assert.deepEqual([...new Set(rejected)].sort(), [
      "bad mac",
      "malformed",
      "other cluster",
      "replay",
      "stale",
      "unknown sender",
    ]);
  });
});
