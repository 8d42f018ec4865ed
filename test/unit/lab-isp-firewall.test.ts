import assert from "node:assert/strict";
import { test } from "node:test";
import { parseIspCounters, renderIspControl, renderIspTable } from "../../src/lab/isp-firewall.ts";

// Trimmed from `nft -j list table inet lab_isp` (nft 1.0.6) after two pings from the
// customer's own address, one from a foreign source and one over IPv6.
const SAMPLE = JSON.stringify({
  nftables: [
    { metainfo: { version: "1.0.6", release_name: "Lester Gooch #5", json_schema_version: 1 } },
    { table: { family: "inet", name: "lab_isp", handle: 1 } },
    {
      counter: { family: "inet", name: "forwarded_out", table: "lab_isp", handle: 3, packets: 2, bytes: 188 },
    },
    {
      counter: { family: "inet", name: "forwarded_in", table: "lab_isp", handle: 4, packets: 2, bytes: 188 },
    },
    { counter: { family: "inet", name: "echo_out", table: "lab_isp", handle: 5, packets: 2, bytes: 188 } },
    {
      counter: {
        family: "inet",
        name: "foreign_dropped",
        table: "lab_isp",
        handle: 6,
        packets: 1,
        bytes: 84,
      },
    },
    { counter: { family: "inet", name: "cut_dropped", table: "lab_isp", handle: 7, packets: 0, bytes: 0 } },
    { counter: { family: "inet", name: "loss_dropped", table: "lab_isp", handle: 8, packets: 0, bytes: 0 } },
    {
      set: {
        family: "inet",
        name: "arrived4",
        table: "lab_isp",
        type: ["ipv4_addr", "ipv4_addr"],
        handle: 9,
        size: 65535,
        elem: [
          { elem: { val: { concat: ["100.64.1.2", "203.0.113.10"] }, counter: { packets: 1, bytes: 84 } } },
          { elem: { val: { concat: ["100.64.2.2", "203.0.113.10"] }, counter: { packets: 1, bytes: 84 } } },
        ],
        stmt: [{ counter: null }],
      },
    },
    {
      set: {
        family: "inet",
        name: "arrived6",
        table: "lab_isp",
        type: ["ipv6_addr", "ipv6_addr"],
        handle: 10,
        size: 65535,
        elem: [
          {
            elem: {
              val: { concat: ["2001:db8:100:1::2", "2001:db8:200::1"] },
              counter: { packets: 1, bytes: 104 },
            },
          },
        ],
        stmt: [{ counter: null }],
      },
    },
    { chain: { family: "inet", table: "lab_isp", name: "control", handle: 1 } },
  ],
});

test("parseIspCounters reads named counters and the arrived sets", () => {
  const c = parseIspCounters(SAMPLE);
  assert.deepEqual(c.forwardedOut, { packets: 2, bytes: 188 });
  assert.deepEqual(c.forwardedIn, { packets: 2, bytes: 188 });
  assert.equal(c.echoOut, 2);
  assert.equal(c.foreignDropped, 1);
  assert.equal(c.cutDropped, 0);
  assert.equal(c.lossDropped, 0);
  assert.deepEqual(c.arrived, [
    { source: "100.64.1.2", destination: "203.0.113.10", packets: 1, bytes: 84 },
    { source: "100.64.2.2", destination: "203.0.113.10", packets: 1, bytes: 84 },
    { source: "2001:db8:100:1::2", destination: "2001:db8:200::1", packets: 1, bytes: 104 },
  ]);
});

test("parseIspCounters refuses a table without the lab's counters", () => {
  assert.throws(() => parseIspCounters(JSON.stringify({ nftables: [] })), /forwarded_out/);
});

test("the ISP table drops foreign sources before anything is forwarded", () => {
  const text = renderIspTable("100.64.2.0/24", "2001:db8:100:2::/64");
  assert.match(text, /iifname "cust" ip saddr != 100\.64\.2\.0\/24 counter name foreign_dropped drop/);
  assert.match(text, /iifname "cust" ip6 saddr != 2001:db8:100:2::\/64 counter name foreign_dropped drop/);
  assert.ok(text.indexOf("foreign_dropped drop") < text.indexOf("jump control"));
  assert.ok(text.indexOf("update @arrived4") < text.indexOf("foreign_dropped drop"));
});

test("control renders cut and loss into the flushed control chain", () => {
  assert.equal(renderIspControl({ cut: false, loss: 0 }), "flush chain inet lab_isp control\n");
  const cut = renderIspControl({ cut: true, loss: 0 });
  assert.match(cut, /control counter name cut_dropped drop/);
  const lossy = renderIspControl({ cut: false, loss: 0.25 });
  assert.match(lossy, /iifname "cust" numgen random mod 10000 < 2500 counter name loss_dropped drop/);
  assert.match(
    renderIspControl({ cut: false, loss: 0, refuse: true }),
    /control iifname "cust" meta l4proto tcp reject with tcp reset\n/,
  );
  assert.throws(() => renderIspControl({ cut: false, loss: 1.5 }));
  assert.throws(() => renderIspControl({ cut: false, loss: Number.NaN }));
});
