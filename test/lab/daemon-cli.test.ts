// The operator's CLI against `nflb run` in a lab router (2 uplinks, real probes, real traffic):
// `nflb status` exit codes (all up 0, one uplink down 1, every uplink down 2, no daemon 2),
// `nflb uplink disable|enable`, `nflb reload` (an invalid config: exit 2 naming the YAML path and
// line, the old data plane serving; a valid one: exit 0 with the kernel already changed), and the
// journald log format (the uplink-down line at warning priority). Needs root.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import type { StatusJson } from "../../src/daemon/status.ts";
import { DaemonFixture, allUp, labConfig, waitStatus, lanBatch } from "../../testkit/daemon-harness.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

describe("nflb CLI against a running daemon (2 uplinks)", { skip, timeout: 300_000 }, () => {
  const lab = new UplinkLab({ uplinks: 2 });
  const config = (weights = [1, 1]) =>
    labConfig(lab, { method: "round-robin", weights, probe: "down_after: 2, up_after: 3" });
  // The log as journald would take it: the journal test reads its priorities.
  const fx = new DaemonFixture(lab, () => config(), { env: () => ({ NFLB_LOG_FORMAT: "journal" }) });
  const via = (n: number) => `inet ${lab.uplink(n).router4}`;
  const nflb = (args: string[]) => fx.cli([...args, "-c", fx.file]);

  const batch = () => lanBatch(lab);

  /** The daemon's log lines as journald would receive them: `<N>{json}`. */
  const journal = (): Record<string, unknown>[] =>
    (fx.daemon?.proc.stdout() ?? "").split("\n").flatMap((l) => {
      const m = /^<(\d)>(\{.*\})$/.exec(l);
      if (!m) return [];
      try {
        return [{ priority: Number(m[1]), ...(JSON.parse(m[2] ?? "") as Record<string, unknown>) }];
      } catch {
        return [];
      }
    });

  before(() => fx.up(), { timeout: 90_000 });
  after(() => fx.down(), { timeout: 60_000 });

  test(
    "status: 0 all up; uplink disable → 1; an uplink down too → 2; enable and restore → 0",
    { timeout: 90_000 },
    async () => {
      const up = await nflb(["status"]);
      assert.equal(up.code, 0, up.stderr + up.stdout);
      assert.match(up.stdout, /^isp1 +wan1 +up /m);

      const dis = await nflb(["uplink", "disable", "isp1", "--json"]);
      assert.equal(dis.code, 0, dis.stderr);
      assert.deepEqual(
        (({ ok, uplink, state }) => ({ ok, uplink, state }))(
          JSON.parse(dis.stdout) as Record<string, unknown>,
        ),
        { ok: true, uplink: "isp1", state: "disabled" },
      );
      assert.deepEqual(await batch(), { [via(2)]: 24 }, "the answer came after the kernel changed");
      const degraded = await nflb(["status", "--json"]);
      assert.equal(degraded.code, 1, "one uplink disabled: degraded");
      assert.equal((JSON.parse(degraded.stdout) as StatusJson).uplinks[0]?.state, "disabled");

      await lab.cutUpstream(2);
      await waitStatus(lab, (s) => s.uplinks[1]?.state === "down", 10_000, "isp2 down");
      assert.equal((await nflb(["status"])).code, 2, "no uplink up: down");
      // The journal gets the event at warning priority, with the uplink and the reason.
      const line = journal().find((l) => l.msg === "uplink isp2 down");
      assert.ok(line, `an "uplink isp2 down" line in:\n${fx.daemon?.proc.stdout().slice(-2000)}`);
      assert.equal(line.priority, 4);
      assert.equal(line.level, "warn");
      assert.equal(line.uplink, "isp2");
      assert.equal(typeof line.reason, "string");
      assert.ok(String(line.reason).length > 0);
      assert.ok(journal().some((l) => l.priority === 6 && l.msg === "nflb running"));

      assert.equal((await nflb(["uplink", "enable", "isp1"])).code, 0);
      assert.equal((await nflb(["status"])).code, 1, "isp2 still down: degraded");
      await lab.restoreUpstream(2);
      await waitStatus(lab, allUp, 15_000, "every uplink up again");
      assert.equal((await nflb(["status"])).code, 0);
      assert.equal((await nflb(["uplink", "disable", "isp9"])).code, 1, "an unknown uplink is refused");
    },
  );

  test(
    "reload: an invalid config exits 2 naming the YAML path and line, the old data plane serves; a valid one exits 0 with the kernel changed",
    { timeout: 90_000 },
    async () => {
      const before = (await nflb(["status", "--json"])).stdout;
      const version = (JSON.parse(before) as StatusJson).config_version;
      assert.deepEqual(Object.keys(await batch()).sort(), [via(1), via(2)]);

      await fx.write(config().replace("weight: 1", "weight: heavy"));
      const bad = await nflb(["reload"]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(
        bad.stderr,
        /reload refused: .*invalid config\n {2}uplinks\.isp1\.weight \(line \d+, column \d+\)/,
      );
      const badJson = await nflb(["reload", "--json"]);
      assert.equal(badJson.code, 2);
      const doc = JSON.parse(badJson.stdout) as { issues: { path: string[]; line: number }[] };
      assert.deepEqual(doc.issues[0]?.path, ["uplinks", "isp1", "weight"]);
      assert.ok((doc.issues[0]?.line ?? 0) > 0);
      assert.deepEqual(
        Object.keys(await batch()).sort(),
        [via(1), via(2)],
        "the old data plane still serves",
      );
      const kept = JSON.parse((await nflb(["status", "--json"])).stdout) as StatusJson;
      assert.equal(kept.config_version, version);
      assert.match(kept.last_reload_error ?? "", /uplinks\.isp1\.weight/);

      // isp2 becomes a backup link (weight 0): once reload returns, new connections all take isp1.
      await fx.write(config([1, 0]));
      const good = await nflb(["reload"]);
      assert.equal(good.code, 0, good.stderr);
      assert.match(good.stdout, /^reloaded: config [0-9a-f]{12} runs/);
      assert.deepEqual(await batch(), { [via(1)]: 24 }, "the kernel had the change when reload returned");
      const now = JSON.parse((await nflb(["status", "--json"])).stdout) as StatusJson;
      assert.notEqual(now.config_version, version);
      assert.equal(now.last_reload_error, null);
      // SIGHUP still reloads.
      await fx.write();
      const pid = fx.daemon?.proc.pid;
      assert.ok(pid, "the daemon runs");
      process.kill(pid, "SIGHUP");
      await waitStatus(lab, (s) => s.config_version !== now.config_version, 10_000, "SIGHUP reload");
      assert.deepEqual(Object.keys(await batch()).sort(), [via(1), via(2)]);
    },
  );

  test("no daemon: status exits 2, reload and uplink exit 1", { timeout: 60_000 }, async () => {
    await fx.stop();
    const none = await nflb(["status"]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no daemon answers/);
    assert.equal((await nflb(["reload"])).code, 1);
    assert.equal((await nflb(["uplink", "enable", "isp1"])).code, 1);
  });
});
