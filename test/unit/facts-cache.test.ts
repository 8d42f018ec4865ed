import { test } from "node:test";
import assert from "node:assert/strict";
import { FactsCache } from "../../src/daemon/facts-cache.ts";
import type { LineProcess, SpawnLines } from "../../src/health/probe-process.ts";
import type { Facts } from "../../src/plan/types.ts";

/** A scripted `ip monitor`: `emit` prints a line, `exit` ends it. */
function fakeMonitor() {
  const started: string[][] = [];
  let onLine: ((l: string) => void) | null = null;
  let exit: ((e: { code: number | null; signal: string | null }) => void) | null = null;
  const spawn: SpawnLines = (argv, cb) => {
    started.push([...argv]);
    onLine = cb;
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) => (exit = r));
    const p: LineProcess = {
      pid: 4242,
      exited,
      stderr: () => "",
      kill: () => exit?.({ code: null, signal: "SIGTERM" }),
    };
    return p;
  };
  return {
    spawn,
    started,
    emit: (l: string) => onLine?.(l),
    exit: () => exit?.({ code: 1, signal: null }),
  };
}

function setup() {
  let t = 0;
  let reads = 0;
  const mon = fakeMonitor();
  const cache = new FactsCache(
    async () => {
      reads++;
      return { interfaces: new Map(), complete: true } as Facts;
    },
    { spawn: mon.spawn, now: () => t, settleMs: 500, ttlMs: 10_000 },
  );
  return {
    cache,
    mon,
    reads: () => reads,
    advance: (ms: number) => (t += ms),
  };
}

test("facts cache: a services-only run reuses the last read while ip monitor listens and prints nothing", async () => {
  const s = setup();
  s.cache.start();
  assert.deepEqual(s.mon.started, [["ip", "monitor", "link", "address", "route"]]);
  s.advance(600);
  await s.cache.get({ gateways: false });
  await s.cache.get({ gateways: false, reuse: true });
  await s.cache.get({ gateways: false, reuse: true });
  assert.equal(s.reads(), 1);
  // A run that is not services-only reads, and its read serves the next ones.
  await s.cache.get({ gateways: false });
  assert.equal(s.reads(), 2);
  await s.cache.get({ gateways: false, reuse: true });
  assert.equal(s.reads(), 2);
  await s.cache.stop();
});

test("facts cache: any link, address or route event, a monitor exit, age or other gateways mean a fresh read", async () => {
  const s = setup();
  s.cache.start();
  s.advance(600);
  await s.cache.get({ gateways: false });
  s.mon.emit("3: eth1: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN");
  await s.cache.get({ gateways: false, reuse: true });
  assert.equal(s.reads(), 2);
  await s.cache.get({ gateways: true, reuse: true });
  assert.equal(s.reads(), 3, "kept without gateways, asked with");
  s.advance(10_001);
  await s.cache.get({ gateways: true, reuse: true });
  assert.equal(s.reads(), 4, "older than the TTL");
  s.mon.exit();
  await new Promise((r) => setImmediate(r));
  await s.cache.get({ gateways: true, reuse: true });
  await s.cache.get({ gateways: true, reuse: true });
  assert.equal(s.reads(), 6, "no monitor: every run reads");
  await s.cache.stop();
});

test("facts cache: nothing is kept before the monitor settled, or from a read an event overlapped", async () => {
  const s = setup();
  await s.cache.get({ gateways: false });
  await s.cache.get({ gateways: false, reuse: true });
  assert.equal(s.reads(), 2, "never started");
  s.cache.start();
  s.advance(100);
  await s.cache.get({ gateways: false });
  await s.cache.get({ gateways: false, reuse: true });
  assert.equal(s.reads(), 4, "started 100 ms ago: maybe not subscribed yet");
  s.advance(500);
  const during = s.cache.get({ gateways: false });
  s.mon.emit("[ADDR] 2: eth0    inet 192.0.2.1/24 scope global eth0");
  await during;
  await s.cache.get({ gateways: false, reuse: true });
  assert.equal(s.reads(), 6, "an event during the read: not kept");
  await s.cache.stop();
});
