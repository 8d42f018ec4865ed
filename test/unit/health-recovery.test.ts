// Recovery marks (pfSense/dpinger's low alarms) and jitter in the uplink state machine.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { RoundResult } from "../../src/health/probe-types.ts";
import { healthParams, initialHealth, onRound, type UplinkHealth } from "../../src/health/uplink-state.ts";
import { rawQuality } from "../../src/health/uplink-quality.ts";
import { probeSchema } from "../../src/config/schema.ts";
import { parseConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/config/issues.ts";

const T = ["198.18.200.1", "198.18.200.2"];

function run(probe: Record<string, unknown>) {
  const p = healthParams(probeSchema.parse({ targets: T, up_after: 3, ...probe }));
  let h: UplinkHealth = initialHealth("isp1", "wan1", 0);
  let t = 0;
  let seq = 0;
  const log: string[] = [];
  const round = (rtt: number | null) => {
    t += 200;
    const r: RoundResult = {
      seq: seq++,
      startedAt: t - 150,
      at: t,
      results: T.map((target) => ({ target, rttMs: rtt })),
    };
    const s = onRound(h, r, p);
    h = s.next;
    if (s.changed) log.push(`${h.state}: ${h.reason}`);
  };
  return { round, log, state: () => h.state, health: () => h };
}

test("recover_rtt: down above max_rtt, back only after up_after rounds within the low mark", () => {
  const r = run({ max_rtt: "100ms", recover_rtt: "50ms" });
  for (let i = 0; i < 3; i++) r.round(150);
  assert.equal(r.state(), "down");
  for (let i = 0; i < 10; i++) r.round(80); // under max_rtt, above recover_rtt: stays down
  assert.equal(r.state(), "down");
  for (let i = 0; i < 3; i++) r.round(40);
  assert.equal(r.state(), "up");
  assert.match(r.log[0] ?? "", /max_rtt/);
  // Without a low mark, 80 ms would have brought it back.
  const plain = run({ max_rtt: "100ms" });
  for (let i = 0; i < 3; i++) plain.round(150);
  for (let i = 0; i < 3; i++) plain.round(80);
  assert.equal(plain.state(), "up");
});

test("recover_loss: down above max_loss, back only once the window's loss is within the low mark", () => {
  const r = run({ max_loss: 0.3, recover_loss: 0.05 });
  for (let i = 0; i < 10; i++) r.round(i % 2 ? null : 10); // 50 % loss
  assert.equal(r.state(), "down");
  // 1 lost round in 10 (10 %): below max_loss, above recover_loss — stays down.
  for (let i = 0; i < 20; i++) r.round(i % 10 === 0 ? null : 10);
  assert.equal(r.state(), "down");
  for (let i = 0; i < 10; i++) r.round(10);
  assert.equal(r.state(), "up");
});

test("max_jitter takes a swinging link down; recover_jitter brings it back only once it is steady", () => {
  const r = run({ max_jitter: "20ms", recover_jitter: "5ms" });
  for (let i = 0; i < 10; i++) r.round(10);
  assert.equal(r.state(), "up");
  for (let i = 0; i < 40 && r.state() === "up"; i++) r.round(i % 2 ? 10 : 90);
  assert.equal(r.state(), "down");
  assert.match(r.log.at(-1) ?? "", /jitter .* above max_jitter 20/);
  let rounds = 0;
  while (r.state() === "down" && rounds < 200) {
    r.round(10);
    rounds++;
  }
  assert.equal(r.state(), "up");
  assert.ok(
    (r.health().jitterMs ?? 99) <= 5,
    `jitter ${r.health().jitterMs} within recover_jitter when back`,
  );
  assert.ok(rounds > 3, "not back after up_after rounds alone: the jitter had to settle");
});

test("auto quality: jitter counts like queueing", () => {
  assert.equal(rawQuality(20, 20, 0), 1);
  assert.equal(rawQuality(20, 20, 0, 100), 0.5);
});

test("a recover_ mark needs its max_ mark and must not be above it (path and line)", () => {
  const base = `version: 1
uplinks:
  isp1:
    interface: wan1
    probe:
`;
  const issues = (probe: string) => {
    try {
      parseConfig(base + probe);
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return e.issues;
    }
    return [];
  };
  const [a] = issues("      recover_rtt: 50ms\n");
  assert.deepEqual(a?.path, ["uplinks", "isp1", "probe", "recover_rtt"]);
  assert.equal(a?.line, 6);
  assert.match(a?.message ?? "", /set max_rtt too/);
  const [b] = issues("      max_loss: 0.1\n      recover_loss: 0.2\n");
  assert.deepEqual(b?.path, ["uplinks", "isp1", "probe", "recover_loss"]);
  assert.equal(b?.line, 7);
  assert.deepEqual(issues("      max_jitter: 30ms\n      recover_jitter: 10ms\n"), []);
});
