import assert from "node:assert/strict";
import { test } from "node:test";
import { dnsReply } from "../../src/lab/tools/dns-reply.ts";

function query(name: string, qtype: number, id = 0x1234): Buffer {
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  const labels = name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  return Buffer.concat([header, ...labels, Buffer.from([0, qtype >> 8, qtype & 0xff, 0, 1])]);
}

test("A queries get 192.0.2.53 with the query's id and question", () => {
  const q = query("probe.example", 1);
  const r = dnsReply(q);
  assert.ok(r);
  assert.equal(r.readUInt16BE(0), 0x1234);
  assert.equal(r.readUInt16BE(2) & 0x8000, 0x8000, "QR set");
  assert.equal(r.readUInt16BE(2) & 0x000f, 0, "NOERROR");
  assert.equal(r.readUInt16BE(6), 1, "one answer");
  assert.deepEqual(r.subarray(12, q.length), q.subarray(12));
  assert.deepEqual([...r.subarray(-4)], [192, 0, 2, 53]);
});

test("AAAA answers 2001:db8::53; other types get no records", () => {
  const r = dnsReply(query("probe.example", 28));
  assert.ok(r);
  assert.equal(r.subarray(-16).toString("hex"), "20010db8000000000000000000000053");
  const txt = dnsReply(query("probe.example", 16));
  assert.ok(txt);
  assert.equal(txt.readUInt16BE(6), 0);
});

test("malformed packets and responses get no reply", () => {
  assert.equal(dnsReply(Buffer.alloc(5)), undefined);
  const q = query("probe.example", 1);
  assert.equal(dnsReply(q.subarray(0, q.length - 2)), undefined);
  const response = Buffer.from(q);
  response.writeUInt16BE(0x8100, 2);
  assert.equal(dnsReply(response), undefined);
});
