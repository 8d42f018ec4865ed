// Uplink monitors against real namespaces: nflb's data plane in the router, the monitors running
// there through src/health/probe-cli.ts (Node cannot switch namespaces itself), ISPs counting what
// reaches them. Needs root, iproute2, nft and fping; skipped with the reason otherwise.
//
// Time figures printed here are for the record only; failover-time distributions and false
// transitions per hour at 5/10/20 % loss belong in bench/ (a 25 s run proves only "none seen").
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { exec } from "../../src/system/exec.ts";
import { ProbeEventLog, isChange } from "../../src/health/probe-log.ts";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import type { TrackedProcess } from "../../src/lab/processes.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";

async function unavailable(): Promise<string | undefined> {
  const why = await labUnavailableReason();
  if (why) return why;
  const f = await exec(["fping", "-v"], { timeoutMs: 5000 }).catch(() => undefined);
  return f?.code === 0 ? undefined : "fping not installed";
}
const why = await unavailable();
const skip = why ? `lab tests skipped: ${why}` : false;

const repo = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const NFLB = repo("bin/nflb");
const TSX = repo("node_modules/tsx/dist/esm/index.mjs");
const PROBE_CLI = repo("src/health/probe-cli.ts");

// Defaults everywhere: interval 200ms, timeout 500ms, down_after 3, up_after 10.
const INTERVAL = 200;
const TIMEOUT = 500;
const DOWN_AFTER = 3;
const UP_AFTER = 10;
const LOSS_RUN_MS = 25_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("uplink probes (5 uplinks: icmp ×2, tcp, http, dns)", { skip, timeout: 120_000 }, () => {
  const lab = new UplinkLab({ uplinks: 5, v6: true });
  const log = new ProbeEventLog();
  let dir = "";
  let cli: TrackedProcess | undefined;
  let lossStart = 0;
  const names = ["isp1", "isp2", "isp3", "isp4", "isp5"];
  const own = (i: number) => [lab.uplink(i).router4, lab.uplink(i).router6];

  before(
    async () => {
      await lab.build();
      const [t1, t2] = lab.addr.targets4;
      const [v6a, v6b] = lab.addr.targets6;
      const probes: Record<number, string> = {
        1: `{ targets: [${t1}, ${t2}] }`,
        2: `{ targets: [${t1}, "${v6b}"] }`,
        3: `{ method: tcp, port: ${lab.ports.tcp}, targets: [${t1}, "${v6a}"] }`,
        4: `{ method: http, port: ${lab.ports.http}, path: /, targets: [${t2}, "${v6b}"] }`,
        5: `{ method: dns, port: ${lab.ports.dns}, targets: [${t1}, ${t2}] }`,
      };
      const uplinks = lab.uplinks.map(
        (u) =>
          `  isp${u.index}:\n    interface: ${u.wanIf}\n    gateway: [${u.gateway4}, "${u.gateway6}"]\n` +
          `    probe: ${probes[u.index]}\n`,
      );
      const yaml = `version: 1\nuplinks:\n${uplinks.join("")}balance:\n  from: [lan0]\n`;
      dir = await mkdtemp(join(tmpdir(), "nflb-probes-"));
      const file = join(dir, "nflb.yaml");
      await writeFile(file, yaml);
      await lab.run("router", [NFLB, "apply", "-c", file], { timeoutMs: 30_000 });
      cli = lab.spawn("router", [process.execPath, "--import", TSX, PROBE_CLI, "-c", file]);
      const proc = cli;
      proc.child.stdout?.on("data", (d: Buffer | string) => log.feed(d.toString()));
      const died = proc.exited.then((code) => {
        throw new Error(`probe-cli exited ${code}: ${proc.stderr().slice(-2000)}`);
      });
      died.catch(() => undefined);
      await Promise.race([
        log.waitFor((e) => e.event === "ready", 20_000, 0, "ready line from probe-cli"),
        died,
      ]);
      // every uplink has answered a few rounds
      await Promise.all(
        names.map(async (n) => {
          for (let k = 0; k < 3; k++) {
            const from = log.mark;
            await log.waitFor(
              (e) => e.event === "round" && e.name === n && e.good === true,
              10_000,
              from,
              `${n} round`,
            );
          }
        }),
      );
    },
    { timeout: 60_000 },
  );

  after(
    async () => {
      await cli?.stop(2000);
      await lab.destroy();
      if (dir) await rm(dir, { recursive: true, force: true });
    },
    { timeout: 30_000 },
  );

  /** Nothing any ISP but `i` saw came from uplink `i`, and no ICMP left through a tcp/http/dns uplink. */
  async function assertNoLeak(i: number) {
    for (const k of [1, 2, 3, 4, 5]) {
      if (k === i) continue;
      const c = await lab.ispCounters(k);
      const leaked = c.arrived.filter((f) => own(i).includes(f.source));
      assert.deepEqual(leaked, [], `isp${k} saw packets from isp${i}'s addresses`);
      assert.equal(c.foreignDropped, 0, `isp${k} dropped packets with a foreign source`);
      if (k >= 3) assert.equal(c.echoOut, 0, `ICMP echo left through isp${k}, whose probes are not ICMP`);
    }
    // isp2 probes .1 and a v6 target; isp1 probes .1 and .2: .2 at isp2 would be isp1's
    const two = await lab.ispCounters(2);
    assert.deepEqual(
      two.arrived.filter((f) => f.destination === lab.addr.targets4[1]),
      [],
      "isp1's probes reached isp2",
    );
  }

  test("every method probes through its own uplink only, and all stay up", { timeout: 20_000 }, async () => {
    assert.deepEqual(
      log.since(0, (e) => e.event === "change"),
      [],
    );
    for (const n of names) {
      const last = log.since(0, (e) => e.event === "round" && e.name === n).pop();
      assert.ok(last && typeof last.rttMs === "number", `${n} has an RTT`);
    }
    for (const i of [1, 2, 3, 4, 5]) {
      const c = await lab.ispCounters(i);
      const toTargets = c.arrived.filter((f) =>
        [...lab.addr.targets4, ...lab.addr.targets6].includes(f.destination),
      );
      assert.ok(toTargets.length > 0, `isp${i} carried probes`);
      for (const f of toTargets)
        assert.ok(own(i).includes(f.source), `isp${i}: ${f.source} → ${f.destination}`);
    }
    await assertNoLeak(1);
  });

  test("start 10 % loss on isp2's probes (checked at the end)", async () => {
    await lab.setLoss(2, 0.1);
    lossStart = Date.now();
  });

  test(
    "a blackholed upstream takes isp1 down after down_after rounds; others stay up",
    { timeout: 20_000 },
    async () => {
      for (const i of [1, 2, 3, 4, 5]) await lab.resetIspCounters(i);
      const mark = log.mark;
      const t0 = Date.now();
      await lab.cutUpstream(1);
      const down = await log.waitFor(isChange("isp1", "down"), 5000, mark, "isp1 down");
      const took = down.t - t0;
      console.log(
        `# blackhole → isp1 down in ${took} ms (bound ${DOWN_AFTER} × ${INTERVAL} + ${TIMEOUT} ms)`,
      );
      assert.equal(down.reason, `3 rounds without an answer from ${lab.addr.targets4.join(", ")}`);
      assert.ok(
        took >= (DOWN_AFTER - 1) * INTERVAL,
        `down after ${took} ms: too early to be ${DOWN_AFTER} rounds`,
      );
      assert.ok(took <= DOWN_AFTER * INTERVAL + TIMEOUT + 900, `down after ${took} ms`);
      // probing continues through isp1 while it is down
      await sleep(1500);
      const one = await lab.ispCounters(1);
      assert.ok(one.cutDropped > 0);
      assert.ok(one.arrived.some((f) => f.source === lab.uplink(1).router4 && f.packets >= 5));
      await assertNoLeak(1);
      assert.deepEqual(
        log.since(mark, (e) => e.event === "change" && e.name !== "isp1"),
        [],
      );
    },
  );

  test("restored, isp1 is up again after exactly up_after good rounds", { timeout: 20_000 }, async () => {
    const mark = log.mark;
    await lab.restoreUpstream(1);
    const up = await log.waitFor(isChange("isp1", "up"), 10_000, mark, "isp1 up");
    assert.match(up.reason ?? "", new RegExp(`^${UP_AFTER} good rounds in a row`));
    // the round that made it up is reported right after the change: the first isp1 round seen as up
    await log.waitFor((e) => e.event === "round" && e.name === "isp1" && e.state === "up", 2000, mark);
    const rounds = log.since(mark, (e) => e.event === "round" && e.name === "isp1");
    const k = rounds.findIndex((e) => e.state === "up");
    assert.ok(k >= UP_AFTER - 1, `up at round ${k} after the restore`);
    const streak = rounds.slice(k - UP_AFTER + 1, k + 1);
    assert.ok(
      streak.every((e) => e.good && e.counted),
      JSON.stringify(streak.map((e) => e.why)),
    );
    const before = rounds[k - UP_AFTER];
    if (before) assert.equal(before.good, false, "one good round fewer would have been enough");
  });

  test(
    "carrier loss takes isp1 down at once; no probe leaves by another uplink",
    { timeout: 25_000 },
    async () => {
      for (const i of [1, 2, 3, 4, 5]) await lab.resetIspCounters(i);
      const mark = log.mark;
      const t0 = Date.now();
      await lab.carrierDown(1);
      // The carrier went away somewhere in [t0, t1]: `ip netns exec … ip link set` takes a while itself.
      const t1 = Date.now();
      const down = await log.waitFor(isChange("isp1", "down"), 3000, mark, "isp1 down");
      console.log(`# carrier loss → isp1 down ${down.t - t1}..${down.t - t0} ms after the carrier went`);
      assert.equal(down.reason, "carrier lost on wan1");
      assert.ok(down.t - t1 < 500, `carrier loss took ${down.t - t1}..${down.t - t0} ms`);
      await sleep(1500);
      await assertNoLeak(1);
      const back = log.mark;
      await lab.carrierUp(1);
      const up = await log.waitFor(isChange("isp1", "up"), 10_000, back, "isp1 up");
      assert.match(up.reason ?? "", new RegExp(`^${UP_AFTER} good rounds in a row`));
    },
  );

  test(
    "10 % probe loss with 2 targets: no transition on isp2 in the run",
    { timeout: LOSS_RUN_MS + 10_000 },
    async () => {
      const left = lossStart + LOSS_RUN_MS - Date.now();
      if (left > 0) await sleep(left);
      const c = await lab.ispCounters(2);
      await lab.setLoss(2, 0);
      const rounds = log.since(0, (e) => e.event === "round" && e.name === "isp2" && e.t >= lossStart);
      console.log(
        `# isp2 under 10 % loss: ${rounds.length} rounds, ${rounds.filter((e) => !e.good).length} failed, ` +
          `max window loss ${Math.max(...rounds.map((e) => e.loss ?? 0)).toFixed(2)}; failed: ` +
          JSON.stringify(rounds.filter((e) => !e.good).map((e) => [e.seq, e.why])),
      );
      assert.ok(c.lossDropped > 0, "the ISP did drop probes");
      assert.ok(
        rounds.some((e) => (e.loss ?? 0) > 0),
        "the monitor saw loss",
      );
      assert.ok(rounds.length >= (LOSS_RUN_MS / INTERVAL) * 0.8);
      assert.deepEqual(
        log.since(0, (e) => e.event === "change" && e.name !== "isp1"),
        [],
        "only isp1 (cut, carrier) changed",
      );
    },
  );

  test("tcp, http and dns probes see a blackhole and the way back", { timeout: 25_000 }, async () => {
    const mark = log.mark;
    await Promise.all([3, 4, 5].map((i) => lab.cutUpstream(i)));
    const downs = await Promise.all(
      ["isp3", "isp4", "isp5"].map((n) => log.waitFor(isChange(n, "down"), 5000, mark, `${n} down`)),
    );
    for (const d of downs) assert.match(d.reason ?? "", /^3 rounds without an answer from /);
    const back = log.mark;
    await Promise.all([3, 4, 5].map((i) => lab.restoreUpstream(i)));
    await Promise.all(
      ["isp3", "isp4", "isp5"].map((n) => log.waitFor(isChange(n, "up"), 10_000, back, `${n} up`)),
    );
    assert.deepEqual(
      log.since(mark, (e) => e.event === "change" && ["isp1", "isp2"].includes(e.name ?? "")),
      [],
    );
  });

  test(
    "a tcp-probed uplink set administratively down: its probes do not leave by another uplink",
    { timeout: 30_000 },
    async () => {
      // `ip link set down` flushes the uplink's routes but keeps its IPv4 address: a probe bound to
      // that address must end at nflb's `from ADDRESS unreachable` rule, not at another default route.
      const wan = lab.uplink(3).wanIf;
      // Keep the IPv6 address too (by default the kernel drops it on down): both families are then
      // bound to an address whose table is empty, and the link comes back as it was.
      await lab.run("router", ["sysctl", "-qw", `net.ipv6.conf.${wan}.keep_addr_on_down=1`]);
      for (const i of [1, 2, 3, 4, 5]) await lab.resetIspCounters(i);
      const mark = log.mark;
      await lab.run("router", ["ip", "link", "set", wan, "down"]);
      const down = await log.waitFor(isChange("isp3", "down"), 3000, mark, "isp3 down");
      assert.equal(down.reason, `${wan} is administratively down`);
      const failed = log.mark;
      await sleep(1500);
      const rounds = log.since(failed, (e) => e.event === "round" && e.name === "isp3");
      assert.ok(rounds.length >= 5, `isp3 kept probing (${rounds.length} rounds)`);
      assert.ok(rounds.every((e) => !e.good));
      await assertNoLeak(3);
      // Back up: the kernel does not restore the flushed routes, a new apply (the daemon's resync) does.
      const back = log.mark;
      await lab.run("router", ["ip", "link", "set", wan, "up"]);
      await lab.run("router", [NFLB, "apply", "-c", join(dir, "nflb.yaml")], { timeoutMs: 30_000 });
      await log.waitFor(isChange("isp3", "up"), 10_000, back, "isp3 up");
    },
  );
});
