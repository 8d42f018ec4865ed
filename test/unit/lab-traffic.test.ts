import assert from "node:assert/strict";
import { test } from "node:test";
import { clientArgs, echoServerArgs, holderArgs } from "../../src/lab/traffic.ts";
import { ErrorList, bump, parseClientSummary, parseHolderSummary } from "../../src/lab/traffic-summary.ts";
import { boundedInt, formatEndpoint, parseEndpoint, plainAddress } from "../../src/lab/tools/endpoint.ts";

const summary = {
  ok: 3,
  failed: 1,
  notStarted: 0,
  bySeen: { "inet 100.64.1.2": 3 },
  bySource: { "100.64.1.2": { "inet 100.64.1.2": 3 } },
  errors: ["100.64.1.2: timeout"],
  durationMs: 12,
};

test("parseClientSummary takes the last JSON line and validates it", () => {
  const out = `warming up\n{"not":"a summary"}\n${JSON.stringify(summary)}\n`;
  assert.deepEqual(parseClientSummary(out), summary);
  assert.throws(() => parseClientSummary(""), /no client summary/);
  assert.throws(() => parseClientSummary(JSON.stringify({ ...summary, ok: -1 })), /no client summary/);
});

test("parseHolderSummary skips the connected line", () => {
  const connected = {
    type: "connected",
    greeting: "inet 1.2.3.4",
    localAddress: "198.18.0.2",
    localPort: 4000,
  };
  const done = {
    type: "summary",
    connected: true,
    greeting: "inet 1.2.3.4",
    exchanges: 9,
    failures: 1,
    errors: ["seq 10: no echo within 300 ms"],
    end: "signal",
    elapsedMs: 1000,
    lastOkMs: 900,
    firstFailureMs: 950,
  };
  assert.deepEqual(parseHolderSummary(`${JSON.stringify(connected)}\n${JSON.stringify(done)}\n`), done);
  assert.throws(() => parseHolderSummary(JSON.stringify(connected)));
});

test("ErrorList keeps distinct messages up to its limit", () => {
  const e = new ErrorList(2);
  for (const m of ["a", "a", "b", "c"]) e.add(m);
  assert.deepEqual(e.toJSON(), ["a", "b"]);
  const r: Record<string, number> = {};
  bump(r, "x");
  bump(r, "x");
  assert.deepEqual(r, { x: 2 });
});

test("endpoints parse IPv4, bracketed and bare IPv6", () => {
  assert.deepEqual(parseEndpoint("198.18.200.1:80"), { address: "198.18.200.1", port: 80, family: 4 });
  assert.deepEqual(parseEndpoint("[2001:db8::1]:53"), { address: "2001:db8::1", port: 53, family: 6 });
  assert.deepEqual(parseEndpoint("2001:db8::1:53"), { address: "2001:db8::1", port: 53, family: 6 });
  assert.throws(() => parseEndpoint("example.com:80"));
  assert.throws(() => parseEndpoint("198.18.200.1:0"));
  assert.throws(() => parseEndpoint("198.18.200.1"));
  assert.equal(formatEndpoint({ address: "2001:db8::1", port: 5 }), "[2001:db8::1]:5");
  assert.equal(plainAddress("::ffff:100.64.1.2"), "100.64.1.2");
  assert.equal(plainAddress("2001:db8::2"), "2001:db8::2");
  assert.equal(plainAddress(undefined), "");
});

test("boundedInt refuses values that would make a loop unbounded", () => {
  assert.equal(boundedInt(undefined, "count", 5, 1, 10), 5);
  assert.equal(boundedInt("10", "count", 5, 1, 10), 10);
  assert.throws(() => boundedInt("11", "count", 5, 1, 10), /--count/);
  assert.throws(() => boundedInt("1e9", "count", 5, 1, 10));
  assert.throws(() => boundedInt("x", "count", 5, 1, 10));
});

test("tool argv always carries a deadline or duration", () => {
  assert.deepEqual(
    clientArgs({ from: "lan", dst: "203.0.113.10", port: 5000, count: 4, sources: ["a", "b"] }),
    [
      "--host",
      "203.0.113.10",
      "--port",
      "5000",
      "--proto",
      "tcp",
      "--count",
      "4",
      "--source",
      "a",
      "--source",
      "b",
      "--deadline-ms",
      "30000",
    ],
  );
  assert.deepEqual(holderArgs({ from: "lan", dst: "2001:db8:203::10", port: 5000 }), [
    "--host",
    "2001:db8:203::10",
    "--port",
    "5000",
    "--duration-ms",
    "5000",
  ]);
  assert.deepEqual(
    echoServerArgs({ role: "inet", name: "b1", hold: true, tcp: [{ address: "2001:db8::1", port: 80 }] }),
    ["--name", "b1", "--hold", "--tcp", "[2001:db8::1]:80"],
  );
});
