import assert from "node:assert/strict";
import { test } from "node:test";
import { parseQuery } from "../../src/explain/packet.ts";
import {
  addrBytes,
  concatKey,
  jhash,
  nftJhash,
  portBytes,
  reciprocalScale,
} from "../../src/nft/ruleset/jhash.ts";
import { parseAddr, type Addr } from "../../src/net/ip.ts";

const A = (s: string): Addr => {
  const a = parseAddr(s);
  assert.ok(a, s);
  return a;
};
const B = (s: string) => addrBytes(A(s));

test("jhash is lookup3's hashlittle (Bob Jenkins' published test vectors)", () => {
  const text = new TextEncoder().encode("Four score and seven years ago");
  assert.equal(jhash(new Uint8Array(), 0), 0xdeadbeef);
  assert.equal(jhash(new Uint8Array(), 0xdeadbeef), 0xbd5b7dde);
  assert.equal(jhash(text, 0), 0x17770551);
  assert.equal(jhash(text, 1), 0xcd628161);
});

// Recorded from kernel 6.18 + nft 1.0.6: `ct mark set jhash <key> mod 1000 seed 0x1234` on UDP
// packets, marks read back with conntrack -L (test/lab/explain.test.ts checks more, live).
test("nft's jhash … mod N seed S matches values the kernel computed", () => {
  const vectors: [string, string, number, number, number][] = [
    // src, dst, saddr, saddr . daddr, saddr . th sport (sport 40000 + last octet)
    ["198.18.0.1", "198.18.0.2", 72, 184, 823],
    ["198.18.0.2", "198.18.0.3", 100, 566, 528],
    ["198.18.0.3", "198.18.0.4", 372, 89, 37],
    ["198.18.0.4", "198.18.0.5", 41, 292, 607],
    ["198.18.0.5", "198.18.0.1", 901, 217, 234],
  ];
  for (const [src, dst, s, sd, sp] of vectors) {
    const sport = 40000 + Number(src.split(".")[3]);
    assert.equal(nftJhash(B(src), 1000, 0x1234), s, `${src}`);
    assert.equal(nftJhash(concatKey(B(src), B(dst)), 1000, 0x1234), sd, `${src} . ${dst}`);
    assert.equal(nftJhash(concatKey(B(src), portBytes(sport)), 1000, 0x1234), sp, `${src} . ${sport}`);
  }
  assert.equal(nftJhash(concatKey(B("2001:db8::1"), B("2001:db8::2")), 1000, 0x1234), 879);
  assert.equal(nftJhash(B("2001:db8::1"), 1000, 0x1234), 69);
});

test("reciprocal_scale maps the 32-bit hash onto [0, n) by its high bits, not by modulo", () => {
  assert.equal(reciprocalScale(0, 7), 0);
  assert.equal(reciprocalScale(0xffffffff, 7), 6);
  assert.equal(reciprocalScale(0x80000000, 1024), 512);
  assert.equal(reciprocalScale(5, 1024), 0, "a small hash lands in slot 0, unlike 5 % 1024");
});

test("keys: addresses in network order, concatenations padded to 32-bit registers", () => {
  assert.deepEqual([...B("198.51.100.7")], [198, 51, 100, 7]);
  assert.deepEqual([...B("2001:db8::1")], [0x20, 0x01, 0x0d, 0xb8, ...Array<number>(11).fill(0), 1]);
  assert.deepEqual([...B("::ffff:1.2.3.4")].slice(10), [0xff, 0xff, 1, 2, 3, 4]);
  assert.deepEqual([...concatKey(B("10.0.0.1"), portBytes(443))], [10, 0, 0, 1, 1, 187, 0, 0]);
  assert.equal(concatKey(B("2001:db8::1"), B("2001:db8::2")).length, 32);
});

test("queries are validated", () => {
  assert.deepEqual(parseQuery({ src: "10.0.0.1", dst: "1.2.3.4", proto: "TCP", port: "443" }), {
    src: A("10.0.0.1"),
    dst: A("1.2.3.4"),
    proto: "tcp",
    port: 443,
  });
  const err = (q: Parameters<typeof parseQuery>[0]) => {
    const r = parseQuery(q);
    assert.ok("error" in r, JSON.stringify(q));
    return r.error;
  };
  assert.match(err({ src: "10.0.0.256", dst: "1.2.3.4" }), /SRC/);
  assert.match(err({ src: "10.0.0.1", dst: "2001:db8::1" }), /same address family/);
  assert.match(err({ src: "10.0.0.1", dst: "1.2.3.4", proto: "sctp" }), /PROTO/);
  assert.match(err({ src: "10.0.0.1", dst: "1.2.3.4", proto: "tcp", port: "70000" }), /PORT/);
  assert.match(err({ src: "10.0.0.1", dst: "1.2.3.4", proto: "icmp", port: "80" }), /needs PROTO tcp or udp/);
});
