import { afterEach, beforeEach, mock, test } from "node:test";
import assert from "node:assert/strict";
import { BackendChecker } from "../../src/health/backend-checker.ts";
import type { BackendCheckSpec, ProbeResult } from "../../src/health/backend-probes.ts";
import {
  CheckLimiter,
  checkPhase,
  inFlightBound,
  MAX_IN_FLIGHT,
  MIN_IN_FLIGHT,
  WaitToken,
} from "../../src/health/check-limiter.ts";
import type { BackendObservation } from "../../src/health/types.ts";
import { parseAddr } from "../../src/net/ip.ts";

const flush = () => new Promise<void>((r) => setImmediate(r));

test("a freed slot is handed on in a later turn of the event loop, not in the releasing call", async () => {
  const l = new CheckLimiter(1);
  const a = await l.acquire();
  let got = false;
  const b = l.acquire().then((r) => ((got = true), r));
  a?.();
  await Promise.resolve();
  assert.equal(got, false, "no chain of microtasks through the queue");
  await flush();
  assert.equal(got, true);
  (await b)?.();
});

test("the limiter grants up to max slots, then in the order asked; a release frees one slot once", async () => {
  const l = new CheckLimiter(2);
  const a = await l.acquire();
  const b = await l.acquire();
  assert.ok(a && b);
  const order: string[] = [];
  const c = l.acquire().then((r) => (order.push("c"), r));
  const d = l.acquire().then((r) => (order.push("d"), r));
  await flush();
  assert.deepEqual(order, []);
  assert.equal(l.inFlight, 2);
  assert.equal(l.queued, 2);
  a();
  a();
  await flush();
  assert.deepEqual(order, ["c"], "a double release frees one slot only");
  b();
  await flush();
  assert.deepEqual(order, ["c", "d"]);
  (await c)?.();
  (await d)?.();
  assert.equal(l.inFlight, 0);
  assert.equal(l.peakInFlight, 2);
});

test("a cancelled wait leaves the queue and resolves with null", async () => {
  const l = new CheckLimiter(1);
  const a = await l.acquire();
  const token = new WaitToken();
  const waiting = l.acquire(token);
  const next = l.acquire();
  token.cancel();
  assert.equal(await waiting, null);
  assert.equal(l.queued, 1);
  a?.();
  const r = await next;
  assert.ok(r, "the next waiter got the slot");
  assert.equal(await l.acquire(token), null, "a cancelled token waits no more");
});

test("the bound is a quarter of the soft fd limit, between 64 and 4,096", () => {
  const limits = (soft: string) =>
    `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                 1048576              files\n`;
  assert.equal(inFlightBound(limits("1024")), 256);
  assert.equal(inFlightBound(limits("20000")), 4096);
  assert.equal(inFlightBound(limits("unlimited")), MAX_IN_FLIGHT);
  assert.equal(inFlightBound(limits("100")), MIN_IN_FLIGHT);
  assert.equal(inFlightBound(null), 256, "no /proc: the default limit of 1024");
});

test("phases spread backends over the interval, the same every time", () => {
  const n = 10_000;
  const buckets = new Array<number>(10).fill(0);
  for (let i = 0; i < n; i++) {
    const p = checkPhase(`s${i >> 6}\x00198.18.${(i >> 8) & 255}.${i & 255}:80`, 1000);
    assert.ok(p >= 0 && p < 1000);
    buckets[Math.floor(p / 100)]!++;
  }
  // Each tenth of the interval holds about a tenth of the backends (±20 %).
  for (const b of buckets) assert.ok(b > 800 && b < 1200, `${buckets.join(" ")}`);
  assert.equal(checkPhase("web\0a:80", 1000), checkPhase("web\0a:80", 1000));
  assert.equal(checkPhase("web\0a:80", 0), 0);
});

const spec = (backend: string): BackendCheckSpec => ({
  service: "web",
  backend,
  address: parseAddr("198.51.100.11") ?? assert.fail(),
  port: 80,
  method: "tcp",
  path: "/",
  intervalMs: 1000,
  timeoutMs: 500,
  rise: 2,
  fall: 1,
});

async function advance(ms: number, step = 10) {
  for (let t = 0; t < ms; t += step) {
    mock.timers.tick(step);
    // Two turns: a freed slot is handed on in a turn of its own.
    await flush();
    await flush();
  }
}

beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 }));
afterEach(() => mock.timers.reset());

test("checkers share the limiter: never more than max checks in flight, every one still checked", async () => {
  const l = new CheckLimiter(3);
  let open = 0;
  let most = 0;
  const starts: number[] = [];
  // Every check hangs until its timeout: the worst case for sockets held.
  const probe = (_s: BackendCheckSpec, signal: AbortSignal) =>
    new Promise<ProbeResult>((resolve) => {
      open++;
      most = Math.max(most, open);
      starts.push(Date.now());
      signal.addEventListener("abort", () => {
        open--;
        resolve({ ok: false, detail: "silence" });
      });
    });
  const checkers = Array.from(
    { length: 9 },
    (_, i) => new BackendChecker(spec(`b${i}:80`), { probe, limiter: l }),
  );
  const downs: BackendObservation[] = [];
  for (const c of checkers) {
    c.on("change", (o) => downs.push(o));
    c.start();
  }
  await flush();
  await advance(1600);
  assert.equal(most, 3, "at most 3 sockets at once");
  // 9 checks of 500 ms through 3 slots: three waves, each timed from its own start.
  assert.deepEqual(starts.slice(0, 9), [0, 0, 0, 500, 500, 500, 1000, 1000, 1000]);
  assert.equal(downs.length, 9, "every backend reached its verdict (fall 1)");
  // Checks in flight end at their timeout: let the clock run while they stop.
  const stopped = Promise.all(checkers.map((c) => c.stop()));
  await advance(600);
  await stopped;
  assert.equal(l.inFlight, 0);
  assert.equal(l.queued, 0, "stopped checkers left the queue");
});

test("a phase delays the first check; later checks keep the interval", async () => {
  const calls: number[] = [];
  const probe = () => {
    calls.push(Date.now());
    return Promise.resolve({ ok: true, detail: "ok" });
  };
  const c = new BackendChecker(spec("a:80"), { probe, phaseMs: 370 });
  c.start();
  await advance(2500);
  assert.deepEqual(calls, [370, 1370, 2370]);
  await c.stop();
});

test("the start rate is bounded: a burst of a twentieth of a second's worth, then evenly spaced", async () => {
  const l = new CheckLimiter(1000, 100);
  const grantedAt: number[] = [];
  const all = Array.from({ length: 300 }, () =>
    l.acquire().then((r) => {
      grantedAt.push(Date.now());
      r?.();
    }),
  );
  await flush();
  await advance(2000, 5);
  assert.equal(grantedAt.filter((t) => t === 0).length, 6, "a burst of 5 (+1) at once");
  const inFirstSecond = grantedAt.filter((t) => t < 1000).length;
  assert.ok(inFirstSecond >= 100 && inFirstSecond <= 110, `${inFirstSecond} started in the first second`);
  assert.ok(grantedAt.length < 210, `${grantedAt.length} started in two seconds`);
  await advance(2000, 5);
  await Promise.all(all);
  assert.equal(grantedAt.length, 300, "every waiter got its turn");
});
