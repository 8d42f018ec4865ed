// The DNS forwarder's pure parts and its sockets on loopback: name matching (exact, wildcard,
// CNAME chains), the table of answered addresses (TTL floor and cap, refresh, bounds), batched
// set writes, and the forwarder (ids, question check, malformed input counted, never thrown).
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { test } from "node:test";
import * as dnsPacket from "dns-packet";
import type { Packet } from "dns-packet";
import { answeredAddresses, DomainMatcher } from "../../src/dns/match.ts";
import { DomainTable, setWriteScript } from "../../src/dns/table.ts";
import { SetWriter } from "../../src/dns/writer.ts";
import { Forwarder, type DropReason } from "../../src/dns/forwarder.ts";

const matcher = new DomainMatcher([
  { name: "video", domains: ["video.example", "*.cdn.example"] },
  { name: "bank", domains: ["bank.example"] },
]);

const answer = (q: string, answers: Packet["answers"]): Packet => ({
  type: "response",
  id: 1,
  questions: [{ type: "A", name: q, class: "IN" }],
  answers,
});

test("exact names, wildcards below a suffix (not the suffix itself), any case", () => {
  assert.deepEqual(matcher.match("Video.Example."), [{ rule: "video", domain: "video.example" }]);
  assert.deepEqual(matcher.match("a.b.cdn.example"), [{ rule: "video", domain: "*.cdn.example" }]);
  assert.deepEqual(matcher.match("cdn.example"), []);
  assert.deepEqual(matcher.match("www.video.example"), []);
  assert.deepEqual(matcher.match("bank.example"), [{ rule: "bank", domain: "bank.example" }]);
});

test("addresses of the question's name and of the names its CNAMEs lead to", () => {
  const a = answer("video.example", [
    { type: "CNAME", name: "video.example", ttl: 60, data: "edge.other.net" },
    { type: "CNAME", name: "edge.other.net", ttl: 60, data: "x.cdn.example" },
    { type: "A", name: "x.cdn.example", ttl: 20, data: "203.0.113.7" },
    { type: "AAAA", name: "x.cdn.example", ttl: 30, data: "2001:db8:0::7" },
    // Not on the chain: ignored.
    { type: "A", name: "unrelated.example", ttl: 20, data: "203.0.113.99" },
  ]);
  assert.deepEqual(answeredAddresses(a, matcher), [
    { rule: "video", domain: "video.example", fam: 4, addr: "203.0.113.7", ttlS: 20 },
    { rule: "video", domain: "video.example", fam: 6, addr: "2001:db8::7", ttlS: 30 },
  ]);
  // A CNAME target that matches a rule counts too; a CNAME loop ends.
  const loop = answer("www.other.net", [
    { type: "CNAME", name: "www.other.net", data: "y.cdn.example" },
    { type: "CNAME", name: "y.cdn.example", data: "www.other.net" },
    { type: "A", name: "y.cdn.example", ttl: 5, data: "198.51.100.1" },
  ]);
  assert.deepEqual(answeredAddresses(loop, matcher), [
    { rule: "video", domain: "*.cdn.example", fam: 4, addr: "198.51.100.1", ttlS: 5 },
  ]);
  // A record whose data is not an address of its type is skipped.
  assert.deepEqual(
    answeredAddresses(answer("bank.example", [{ type: "A", name: "bank.example", data: "::1" }]), matcher),
    [],
  );
});

test("the table: TTL floored and capped, refreshed only later, bounded per rule and in total", () => {
  const t = new DomainTable({ perRule: 2, total: 3, minTtlMs: 30_000, maxTtlMs: 3_600_000 });
  assert.equal(t.lifetime(5), 30_000);
  assert.equal(t.lifetime(86_400), 3_600_000);
  assert.equal(t.record("video", 4, "203.0.113.1", 60, "video.example", 0), "new");
  assert.equal(t.record("video", 4, "203.0.113.1", 60, "video.example", 500), "unchanged");
  assert.equal(t.record("video", 4, "203.0.113.1", 60, "video.example", 10_000), "refreshed");
  // A shorter remaining TTL (a cache's answer) never shortens it.
  assert.equal(t.record("video", 4, "203.0.113.1", 1, "video.example", 11_000), "unchanged");
  assert.equal(t.record("video", 4, "203.0.113.2", 60, "video.example", 11_000), "new");
  assert.equal(t.record("video", 4, "203.0.113.3", 60, "video.example", 11_000), "full");
  assert.equal(t.record("bank", 4, "203.0.113.4", 60, "bank.example", 11_000), "new");
  assert.equal(t.record("bank", 6, "2001:db8::4", 60, "bank.example", 11_000), "full");
  assert.deepEqual(t.lookup(4, "203.0.113.1", 20_000), [
    { rule: "video", domain: "video.example", leftMs: 50_000 },
  ]);
  assert.deepEqual(t.elements("video", 4, 20_000), [
    { key: "203.0.113.1", timeout: "50s" },
    { key: "203.0.113.2", timeout: "51s" },
  ]);
  // Once expired, room again.
  assert.equal(t.record("video", 4, "203.0.113.3", 60, "video.example", 100_000), "new");
  assert.equal(t.size, 1);
  // A reload that drops a domain drops its entries (and says which, for the kernel).
  assert.deepEqual(
    t.configure({ perRule: 2, total: 3, minTtlMs: 1000, maxTtlMs: 60_000 }, [{ name: "video", domains: [] }]),
    [{ rule: "video", fam: 4, addr: "203.0.113.3" }],
  );
  assert.equal(t.size, 0);
});

test("set writes: add, delete, add with timeout (refreshes on kernels that ignore a re-add)", () => {
  const s = setWriteScript(
    "inet nflb",
    [
      { rule: "video", fam: 4, addr: "203.0.113.1", timeoutMs: 30_000 },
      { rule: "video", fam: 4, addr: "203.0.113.2", timeoutMs: 1500 },
    ],
    (r, f) => `dom_${r}_${f}`,
  );
  assert.equal(
    s,
    [
      "add element inet nflb dom_video_4 { 203.0.113.1, 203.0.113.2 }",
      "delete element inet nflb dom_video_4 { 203.0.113.1, 203.0.113.2 }",
      "add element inet nflb dom_video_4 { 203.0.113.1 timeout 30s, 203.0.113.2 timeout 2s }",
      "",
    ].join("\n"),
  );
});

test("the writer: urgent writes at once and waited for; refreshes batched, one transaction at a time", async () => {
  const calls: string[][] = [];
  let release: () => void = () => undefined;
  const w = new SetWriter(
    (ws) => {
      calls.push(ws.map((x) => x.addr));
      return new Promise<void>((r) => (release = r));
    },
    {},
    20,
  );
  const w1 = { rule: "r", fam: 4 as const, addr: "a", timeoutMs: 1000 };
  const first = w.write([w1], true);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls, [["a"]]);
  // Queued behind the one in flight, coalesced into one.
  void w.write([{ ...w1, addr: "b" }], false);
  const third = w.write([{ ...w1, addr: "c" }], true);
  assert.equal(calls.length, 1);
  release();
  await first;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls, [["a"], ["b", "c"]]);
  release();
  await third;
  w.close();
});

/** A loopback upstream that answers every query with `answers` (or garbage first when asked). */
async function upstream(answers: Packet["answers"], opts: { garbageFirst?: boolean; silent?: boolean } = {}) {
  const s = dgram.createSocket("udp4");
  s.on("message", (msg, rinfo) => {
    if (opts.silent) return;
    const q = dnsPacket.decode(msg);
    if (opts.garbageFirst)
      s.send(Buffer.from([msg[0] ?? 0, msg[1] ?? 0, 0x81, 0x80, 0, 1]), rinfo.port, rinfo.address);
    const a = dnsPacket.encode({
      type: "response",
      id: q.id ?? 0,
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: q.questions ?? [],
      answers,
    });
    s.send(a, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  return { socket: s, port: s.address().port };
}

function ask(port: number, msg: Buffer, timeoutMs = 1000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const c = dgram.createSocket("udp4");
    const t = setTimeout(() => done(null), timeoutMs);
    const done = (b: Buffer | null) => {
      clearTimeout(t);
      c.close();
      resolve(b);
    };
    c.on("message", (b) => done(b));
    c.send(msg, port, "127.0.0.1");
  });
}

async function forwarder(upPort: number, held: Packet[], hold: Promise<void> | null = null) {
  const dropped: DropReason[] = [];
  const probe = dgram.createSocket("udp4");
  await new Promise<void>((r) => probe.bind(0, "127.0.0.1", r));
  const port = probe.address().port;
  probe.close();
  const f = new Forwarder({
    listen: [{ addr: "127.0.0.1", family: 4, port }],
    upstream: [{ addr: "127.0.0.1", family: 4, port: upPort }],
    timeoutMs: 300,
    maxPending: 16,
    maxTcp: 4,
    events: {
      query: () => undefined,
      answer: () => undefined,
      dropped: (r) => dropped.push(r),
      answered: (p) => {
        held.push(p);
        return hold;
      },
    },
  });
  await f.start();
  return { f, port, dropped };
}

const query = (name: string, id = 4242) =>
  dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: "A", name, class: "IN" }],
  });

test("the forwarder: answers come back unchanged with the client's id, after the hold", async () => {
  const up = await upstream([{ type: "A", name: "video.example", ttl: 5, data: "203.0.113.7" }], {
    garbageFirst: true,
  });
  const seen: Packet[] = [];
  let release: () => void = () => undefined;
  const hold = new Promise<void>((r) => (release = r));
  const { f, port, dropped } = await forwarder(up.port, seen, hold);
  try {
    let got = false;
    const pending = ask(port, query("video.example")).then((b) => {
      got = true;
      return b;
    });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(got, false, "held until the set has the address");
    release();
    const b = await pending;
    assert.ok(b);
    const p = dnsPacket.decode(b);
    assert.equal(p.id, 4242);
    assert.deepEqual(
      (p.answers ?? []).map((a) => (a as { data: string }).data),
      ["203.0.113.7"],
    );
    assert.equal(seen.length, 1);
    // The garbage the upstream sent first was dropped, not taken for the answer.
    assert.deepEqual(dropped, ["malformed-answer"]);
  } finally {
    f.stop();
    up.socket.close();
  }
});

test("the forwarder drops and counts what is not a query, and times out a silent upstream", async () => {
  const up = await upstream([], { silent: true });
  const { f, port, dropped } = await forwarder(up.port, []);
  try {
    const c = dgram.createSocket("udp4");
    const junk = [
      Buffer.from([1, 2, 3]),
      Buffer.alloc(5000, 1),
      Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]),
      dnsPacket.encode({ type: "response", id: 1, questions: [{ type: "A", name: "x.example" }] }),
    ];
    for (const j of junk) await new Promise((r) => c.send(j, port, "127.0.0.1", r));
    c.close();
    assert.equal(await ask(port, query("silent.example"), 600), null);
    assert.deepEqual([...dropped].sort(), ["malformed", "malformed", "not-a-query", "oversized", "timeout"]);
    assert.equal(f.pendingCount, 0);
  } finally {
    f.stop();
    up.socket.close();
  }
});
