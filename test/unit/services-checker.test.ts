import { afterEach, beforeEach, mock, test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { BackendChecker, backendCheckSpec, createBackendChecker } from "../../src/health/backend-checker.ts";
import type { BackendCheckSpec, ProbeResult } from "../../src/health/backend-probes.ts";
import type { BackendObservation } from "../../src/health/types.ts";
import { parseAddr } from "../../src/net/ip.ts";

const spec = (o: Partial<BackendCheckSpec> = {}): BackendCheckSpec => ({
  service: "web",
  backend: "198.51.100.11:80",
  address: parseAddr("198.51.100.11") ?? assert.fail(),
  port: 80,
  method: "tcp",
  path: "/",
  intervalMs: 1000,
  timeoutMs: 500,
  rise: 2,
  fall: 3,
  ...o,
});

/** A probe answering from a script; `hang` never answers. */
function scripted(results: (boolean | "hang")[]) {
  const calls: number[] = [];
  const aborted: boolean[] = [];
  const probe = (_s: BackendCheckSpec, signal: AbortSignal): Promise<ProbeResult> => {
    calls.push(Date.now());
    const r = results.shift() ?? true;
    if (r === "hang")
      return new Promise((resolve) =>
        signal.addEventListener("abort", () => {
          aborted.push(true);
          resolve({ ok: false, detail: "aborted" });
        }),
      );
    return Promise.resolve({ ok: r, detail: r ? "ok" : "refused" });
  };
  return { probe, calls, aborted };
}

const flush = () => new Promise<void>((r) => setImmediate(r));
async function advance(ms: number, step = 10) {
  for (let t = 0; t < ms; t += step) {
    mock.timers.tick(step);
    await flush();
  }
}

beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 }));
afterEach(() => mock.timers.reset());

test("fall failures in a row take a backend down, once, with the reason", async () => {
  const s = scripted([true, false, false, false, false]);
  const c = new BackendChecker(spec(), { probe: s.probe });
  const changes: BackendObservation[] = [];
  c.on("change", (o) => changes.push(o));
  c.start();
  await advance(100);
  assert.deepEqual(s.calls, [0], "first check right away");
  await advance(2000);
  assert.equal(changes.length, 0, "two failures are not three");
  await advance(1000);
  assert.equal(changes.length, 1);
  assert.equal(changes[0]?.state, "down");
  assert.match(changes[0]?.reason ?? "", /3 failed checks: refused/);
  assert.equal(changes[0]?.since, 3000);
  assert.deepEqual(s.calls, [0, 1000, 2000, 3000], "one check per interval");
  await advance(1000);
  assert.equal(changes.length, 1, "no repeated change while it stays down");
  await c.stop();
});

test("rise good checks bring it back; a failure in between restarts the count", async () => {
  const s = scripted([false, false, false, true, false, true, true]);
  const c = new BackendChecker(spec(), { probe: s.probe });
  const states: string[] = [];
  c.on("change", (o) => states.push(`${o.state}@${o.since}`));
  c.start();
  await advance(7000);
  assert.deepEqual(states, ["down@2000", "up@6000"]);
  assert.equal(c.snapshot().state, "up");
  await c.stop();
});

test("a check that does not answer within timeout fails and is aborted", async () => {
  const s = scripted(["hang", "hang", "hang"]);
  const c = new BackendChecker(spec({ timeoutMs: 300, fall: 2 }), { probe: s.probe });
  let down: BackendObservation | undefined;
  c.on("change", (o) => (down = o));
  c.start();
  await advance(1500);
  assert.equal(down?.state, "down");
  assert.match(down?.reason ?? "", /no answer within 300 ms/);
  assert.equal(down?.since, 1300);
  assert.ok(s.aborted.length >= 2);
  await c.stop();
});

test("a check longer than the interval delays the next one instead of overlapping", async () => {
  const s = scripted(["hang", true]);
  const c = new BackendChecker(spec({ intervalMs: 200, timeoutMs: 500 }), { probe: s.probe });
  c.start();
  await advance(800);
  assert.deepEqual(s.calls, [0, 500, 700]);
  await c.stop();
});

test("initial state can be down; stop() ends the checks", async () => {
  const s = scripted([true, true, true]);
  const c = new BackendChecker(spec(), { probe: s.probe, initial: "down" });
  const states: string[] = [];
  c.on("change", (o) => states.push(o.state));
  c.start();
  await advance(1100);
  assert.deepEqual(states, ["up"]);
  await c.stop();
  await advance(5000);
  assert.equal(s.calls.length, 2);
});

test("check: none never probes and stays up", async () => {
  const s = scripted([false]);
  const c = new BackendChecker(spec({ method: "none" }), { probe: s.probe });
  c.start();
  await advance(5000);
  assert.equal(s.calls.length, 0);
  assert.equal(c.snapshot().state, "up");
  await c.stop();
});

test("specs come from the service's check block; one checker per backend", () => {
  const c = parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:80
    check: { method: http, path: /health, expect_status: 204, interval: 200ms, timeout: 100ms, rise: 1, fall: 2, port: 8081 }
    backends:
      - { address: 198.51.100.11:80 }
      - { address: "198.51.100.12:80" }
  dns:
    listen: "[2001:db8::10]:53"
    protocol: udp
    check: { method: none }
    backends:
      - { address: "[2001:db8::11]:53" }
`);
  const s = backendCheckSpec("web", c.services?.web ?? assert.fail(), {
    address: "198.51.100.11:80",
    weight: 1,
  });
  assert.deepEqual(
    { ...s, address: s.address.text },
    {
      service: "web",
      backend: "198.51.100.11:80",
      address: "198.51.100.11",
      port: 8081,
      method: "http",
      path: "/health",
      expectStatus: 204,
      intervalMs: 200,
      timeoutMs: 100,
      rise: 1,
      fall: 2,
    },
  );
  const all = Object.entries(c.services ?? {}).flatMap(([service, svc]) =>
    svc.backends.map((backend) => createBackendChecker({ service, svc, backend })),
  );
  assert.deepEqual(
    all.map((x) => [x.spec.service, x.spec.backend, x.spec.method]),
    [
      ["web", "198.51.100.11:80", "http"],
      ["web", "198.51.100.12:80", "http"],
      ["dns", "[2001:db8::11]:53", "none"],
    ],
  );
});
