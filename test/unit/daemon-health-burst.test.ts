import { afterEach, beforeEach, mock, test } from "node:test";
import assert from "node:assert/strict";
import { HealthBurst } from "../../src/daemon/health-burst.ts";
import type { Log } from "../../src/daemon/log.ts";
import type { BackendObservation, HealthState } from "../../src/health/types.ts";

interface Line {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

function capture(): { log: Log; lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) =>
    void lines.push({ level, msg, fields });
  const log = { info: at("info"), warn: at("warn"), error: at("error"), debug: at("debug") };
  return { log: log as unknown as Log, lines };
}

const obs = (i: number, state: HealthState = "down"): BackendObservation => ({
  service: `s${i % 7}`,
  backend: `198.18.0.${i % 250}:${1000 + i}`,
  state,
  reason: "tcp: ECONNREFUSED",
  since: Date.now(),
});

function setup(o: { quietMs?: number; maxDelayMs?: number; linesPerSecond?: number } = {}) {
  const { log, lines } = capture();
  const reasons: string[] = [];
  const b = new HealthBurst({ log, reconcile: (r) => void reasons.push(r), ...o });
  return { b, lines, reasons };
}

beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 }));
afterEach(() => mock.timers.reset());

test("one transition: its own line and one reconcile with its own reason, at once", () => {
  const s = setup();
  s.b.transition(obs(1));
  assert.deepEqual(s.reasons, ["backend s1/198.18.0.1:1001 down: tcp: ECONNREFUSED"]);
  mock.timers.tick(2000);
  assert.equal(s.reasons.length, 1);
  assert.deepEqual(
    s.lines.map((l) => [l.level, l.msg]),
    [["warn", "backend s1/198.18.0.1:1001 down"]],
  );
  s.b.close();
});

test("a burst of 10,000: the first at once, the rest in one reconcile; a bounded number of lines", () => {
  const s = setup();
  for (let i = 0; i < 10_000; i++) s.b.transition(obs(i));
  assert.equal(s.reasons.length, 1, "the first at once");
  mock.timers.tick(50);
  assert.equal(s.reasons.length, 2);
  assert.match(s.reasons[1] ?? "", /^9999 backend health changes: backend s1\/.* \(\+9996 more\)$/);
  assert.ok((s.reasons[1] ?? "").length < 400, "the reason stays short");
  mock.timers.tick(1000);
  assert.equal(s.lines.length, 21, "20 lines, then one summary");
  const summary = s.lines.at(-1);
  assert.equal(summary?.msg, "9980 backends down in 7 services (more, not logged one by one)");
  assert.equal(summary?.fields.down, 9980);
  assert.equal(summary?.fields.services_down, 7);
  s.b.close();
});

test("a stream of transitions is reconciled at least once a second, never once per transition", () => {
  const s = setup();
  // One every 10 ms for 3 s: never quiet for 50 ms.
  for (let t = 0; t < 3000; t += 10) {
    s.b.transition(obs(t / 10, t % 20 ? "down" : "up"));
    mock.timers.tick(10);
  }
  mock.timers.tick(50);
  // The first at once, then one a second.
  assert.equal(s.reasons.length, 4, s.reasons.join("\n"));
  // Per second: 20 lines and one summary of both directions.
  const summaries = s.lines.filter((l) => l.msg.includes("not logged one by one"));
  assert.equal(summaries.length, 3);
  assert.match(summaries[0]?.msg ?? "", /^\d+ backends down in \d services, \d+ backends up in \d services/);
  assert.equal(s.lines.length, 63);
  s.b.close();
});

test("close: nothing more is reconciled; held lines are summarized at once", () => {
  const s = setup({ linesPerSecond: 1 });
  s.b.transition(obs(1));
  s.b.transition(obs(2, "up"));
  s.b.close();
  mock.timers.tick(2000);
  assert.equal(s.reasons.length, 1, "only the first, at once");
  assert.deepEqual(
    s.lines.map((l) => [l.level, l.msg]),
    [
      ["warn", "backend s1/198.18.0.1:1001 down"],
      ["info", "1 backends up in 1 services (more, not logged one by one)"],
    ],
  );
  s.b.transition(obs(3));
  assert.equal(s.lines.length, 2);
});
