// Tunnel uplinks with real OpenVPN (seed 004): two `dev tun` tunnels from the router to servers in
// the internet namespace (TLS with a throwaway CA made by openssl; static-key mode is deprecated
// in OpenVPN 2.6), over their own veth, balanced 1:1 by `nflb run`. One tunnel is not connected
// when nflb starts; it connects later and is then killed. Needs root, openvpn and openssl.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { exec } from "../../src/system/exec.ts";
import { ipBatch, labUnavailableReason } from "../../src/lab/netns.ts";
import type { TrackedProcess } from "../../src/lab/processes.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import {
  TUNNEL_TRANSPORT,
  makeTunnelPki,
  missingTools,
  startOpenvpn,
  tunnelPlan,
} from "../../src/lab/dynamic-links.ts";
import {
  DaemonFixture,
  failures,
  lanBatch,
  recoveredAt,
  sleep,
  startPoller,
  uplinksConfig,
  waitStatus,
} from "../../testkit/daemon-harness.ts";

const unavailable =
  (await labUnavailableReason()) ??
  (await missingTools(["openvpn", "openssl"])) ??
  ((await exec(["test", "-c", "/dev/net/tun"], { timeoutMs: 5000 })).code === 0
    ? undefined
    : "no /dev/net/tun");
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

/** The bound for moving a killed tunnel's new connections. */
const KILL_BOUND_MS = 1000;
const INTERVAL_MS = 200;
const UP_AFTER = 10;

const TRANSPORT = TUNNEL_TRANSPORT;
const tunnel = tunnelPlan;

describe(
  "nflb run over two OpenVPN tunnels, weights 1:1, one connecting late",
  { skip, timeout: 240_000 },
  () => {
    const lab = new UplinkLab({ uplinks: 1 });
    const clients = new Map<number, TrackedProcess>();

    const openvpn = (role: "router" | "inet", i: number): TrackedProcess =>
      startOpenvpn(lab, role === "inet" ? "server" : "client", i, fx.dir);

    const config = () => {
      const probe = `targets: [${lab.addr.targets4.join(", ")}], interval: ${INTERVAL_MS}ms, up_after: ${UP_AFTER}`;
      const vpn = (i: number) => ({ interface: tunnel(i).dev, weight: 1, probe });
      return uplinksConfig({ vpn1: vpn(1), vpn2: vpn(2) }, [
        "balance: { from: [lan0], method: round-robin }",
      ]);
    };

    /** The tunnels' transport link, both servers and tun1's client; the test starts nflb. */
    const prepare = async () => {
      await makeTunnelPki(fx.dir);
      await ipBatch(undefined, [
        `link add name ${TRANSPORT.routerIf} netns ${lab.netns("router")} type veth peer name ${TRANSPORT.inetIf} netns ${lab.netns("inet")}`,
      ]);
      await ipBatch(lab.netns("router"), [`addr add ${TRANSPORT.router}/30 dev vpnu0`, "link set vpnu0 up"]);
      await ipBatch(lab.netns("inet"), [
        `addr add ${TRANSPORT.inet}/30 dev ${TRANSPORT.inetIf}`,
        `link set ${TRANSPORT.inetIf} up`,
      ]);
      for (const i of [1, 2]) {
        const s = openvpn("inet", i);
        await s.waitForLine(/Initialization Sequence Completed|UDPv4 link local/, 15_000);
      }
      const c1 = openvpn("router", 1);
      clients.set(1, c1);
      await c1.waitForLine(/Initialization Sequence Completed/, 20_000);
    };
    // Every openvpn is started by lab.spawn: down() stops them by pid with the lab.
    const fx = new DaemonFixture(lab, config, { prepare, start: false, ready: null });

    before(() => fx.up(), { timeout: 90_000 });
    after(() => fx.down(), { timeout: 60_000 });

    test(
      "starts with tun2 absent and balances over tun1; tun2 connects and takes its share within up_after rounds; killing its openvpn moves its new connections within 1 s",
      { timeout: 150_000 },
      async (t) => {
        await fx.start();
        const s = await waitStatus(
          lab,
          (x) => x.uplinks[0]?.state === "up" && x.uplinks[0].probed,
          15_000,
          "vpn1 up",
        );
        assert.equal(s.uplinks[1]?.state, "down");
        assert.equal(s.uplinks[1]?.reason, "interface tun2 not present");
        assert.deepEqual(Object.keys(await lanBatch(lab)), [`inet ${tunnel(1).client}`]);

        // tun2 connects.
        const poller = await startPoller(lab, { durationMs: 60_000 });
        const c2 = openvpn("router", 2);
        clients.set(2, c2);
        let appeared = 0;
        for (let i = 0; i < 400 && !appeared; i++) {
          const r = await lab.exec("router", ["ip", "link", "show", "dev", "tun2"]);
          if (r.code === 0) appeared = Date.now();
          else await sleep(20);
        }
        assert.ok(appeared, "tun2 appeared");
        await c2.waitForLine(/Initialization Sequence Completed/, 20_000);
        const connected = Date.now();
        const up = await waitStatus(lab, (x) => x.uplinks[1]?.state === "up", 15_000, "vpn2 up");
        const upAt = Date.parse(up.uplinks[1]?.since ?? "");
        t.diagnostic(
          `tun2: device at 0, tunnel connected at ${connected - appeared} ms, up at ${upAt - appeared} ms`,
        );
        assert.ok(
          upAt - connected <= (UP_AFTER + 3) * INTERVAL_MS,
          `up ${upAt - connected} ms after the tunnel connected (up_after ${UP_AFTER} × ${INTERVAL_MS} ms)`,
        );
        await sleep(1000);
        const mid = poller.batches();
        const firstVia2 = mid.find((b) => (b.seen[`inet ${tunnel(2).client}`] ?? 0) > 0);
        assert.ok(firstVia2, "tun2 carries connections");
        t.diagnostic(
          `tun2: first balanced connection ${firstVia2.t - appeared} ms after the device appeared`,
        );
        // The poller's connections run beside the batch and take turns of the same round-robin
        // counter, so the split of these 24 is 12:12 give or take the poller's few.
        const share = await lanBatch(lab);
        const [a, b] = [share[`inet ${tunnel(1).client}`] ?? 0, share[`inet ${tunnel(2).client}`] ?? 0];
        assert.ok(a + b === 24 && Math.abs(a - b) <= 4, `1:1 round-robin: ${JSON.stringify(share)}`);
        // The device came after the full apply: its loose rp_filter is written by the update.
        const rp = await lab.exec("router", ["sysctl", "-n", "net.ipv4.conf.tun2.rp_filter"]);
        assert.equal(rp.stdout.trim(), "2", "tun2's rp_filter is loose once it appeared");
        const svm = await lab.exec("router", ["sysctl", "-n", "net.ipv4.conf.tun2.src_valid_mark"]);
        assert.equal(svm.stdout.trim(), "1", "tun2's reverse-path check uses the packet's mark");

        // Its openvpn is killed (by pid): tun2 goes, its new connections move to tun1.
        const killed = Date.now();
        await c2.stop(2000);
        const down = await waitStatus(lab, (x) => x.uplinks[1]?.state === "down", 5000, "vpn2 down");
        assert.equal(down.uplinks[1]?.reason, "interface tun2 not present");
        await sleep(1500);
        const batches = await poller.stop();
        const at = recoveredAt(batches, killed);
        assert.ok(at !== null, "new connections kept failing");
        t.diagnostic(`kill: new connections all succeed again ${at - killed} ms after the kill`);
        assert.ok(at - killed <= KILL_BOUND_MS, `${at - killed} ms (bound ${KILL_BOUND_MS})`);
        const late = batches.filter((b) => b.t >= killed + KILL_BOUND_MS);
        assert.deepEqual(failures(late, killed + KILL_BOUND_MS), []);
        assert.ok(!late.some((b) => b.seen[`inet ${tunnel(2).client}`]), "nothing new by tun2");
        assert.deepEqual(Object.keys(await lanBatch(lab)), [`inet ${tunnel(1).client}`]);
      },
    );
  },
);
