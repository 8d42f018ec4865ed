// Uplinks that come and go, with real components: a DHCP WAN (dnsmasq in the ISP namespace,
// busybox udhcpc on the router) with `gateway: auto` whose lease changes under a running
// `nflb run`, and an uplink whose interface does not exist when nflb starts and appears later as
// a bridge. Needs root, dnsmasq and udhcpc (scripts/ensure-deps).
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { exec } from "../../src/system/exec.ts";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import type { TrackedProcess } from "../../src/lab/processes.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import {
  addresses4 as addressesOf,
  forceNewLease,
  missingTools,
  startDhcpClient,
  startDhcpServer,
} from "../../src/lab/dynamic-links.ts";
import {
  DaemonFixture,
  NFLB,
  failures,
  lanBatch,
  sleep,
  startPoller,
  status,
  timeline,
  uplinksConfig,
  waitStatus,
} from "../../testkit/daemon-harness.ts";

const unavailable = (await labUnavailableReason()) ?? (await missingTools(["dnsmasq", "udhcpc"]));
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

/** The bound: new connections from the new address within 2 s of the client applying it. */
const LEASE_BOUND_MS = 2000;

const addresses4 = (lab: UplinkLab, dev: string) => addressesOf(lab, "router", dev);

/** Argument lists of the fping processes in the router namespace (their `-S` is the probe source). */
async function fpingArgs(lab: UplinkLab): Promise<string[][]> {
  const r = await exec(["ip", "netns", "pids", lab.netns("router")], { timeoutMs: 5000 });
  const out: string[][] = [];
  for (const pid of r.stdout.split("\n").filter((l) => /^\d+$/.test(l))) {
    const c = await exec(["cat", `/proc/${pid}/cmdline`], { timeoutMs: 5000 });
    const argv = c.stdout.split("\0").filter(Boolean);
    if (argv[0]?.endsWith("fping")) out.push(argv);
  }
  return out;
}

describe("nflb run with a DHCP uplink (dnsmasq → udhcpc, gateway: auto)", { skip, timeout: 240_000 }, () => {
  const lab = new UplinkLab({ uplinks: 2, clientAddresses: 1 });
  let dnsmasq: TrackedProcess | undefined;
  let udhcpc: TrackedProcess | undefined;
  const u1 = () => lab.uplink(1);
  /** The ISP's second router address: the next lease names it as the gateway. */
  const gw2 = () => u1().gateway4.replace(/\.1$/, ".254");
  const lease = (n: number) => u1().gateway4.replace(/\.1$/, `.${n}`);
  const pinned = () => lab.addr.lan.extra[0] ?? "";

  const startDnsmasq = (from: number, to: number, router: string): TrackedProcess =>
    startDhcpServer(lab, {
      role: "isp1",
      dev: "cust",
      from: lease(from),
      to: lease(to),
      router,
      leaseFile: join(fx.dir, "dnsmasq.leases"),
    });

  const config = () => {
    const targets = `targets: [${lab.addr.targets4.join(", ")}]`;
    const isp2 = lab.uplink(2);
    return uplinksConfig(
      {
        // A new lease starts with the old address gone (udhcpc's deconfig): the uplink is back
        // after up_after good rounds, and those must fit in the 2 s.
        isp1: { interface: u1().wanIf, gateway: "auto", probe: `${targets}, up_after: 3` },
        isp2: { interface: isp2.wanIf, gateway: isp2.gateway4, probe: `${targets}, up_after: 5` },
      },
      [
        "balance:",
        "  from: [lan0]",
        "  method: round-robin",
        "rules:",
        `  - { name: holder, source: [${pinned()}/32], via: [isp2] }`,
      ],
    );
  };
  // nflb starts before the lease: wan1 has no address and no gateway yet (no readiness to wait for).
  const fx = new DaemonFixture(lab, config, {
    ready: null,
    // wan1 loses its static address: from now on it has what the DHCP lease gives it.
    prepare: async () => {
      await lab.run("router", ["ip", "-4", "addr", "flush", "dev", u1().wanIf]);
      await lab.run("isp1", ["ip", "addr", "add", `${gw2()}/24`, "dev", "cust"]);
    },
  });

  // dnsmasq and udhcpc are the lab's processes: down() stops them by pid with the lab.
  before(() => fx.up(), { timeout: 90_000 });
  after(() => fx.down(), { timeout: 60_000 });

  test("before any lease the DHCP uplink is down with its reason; the other carries everything", async () => {
    const s = await waitStatus(lab, (x) => x.uplinks[1]?.state === "up", 15_000, "isp2 up");
    assert.equal(s.uplinks[0]?.state, "down");
    assert.match(s.uplinks[0]?.reason ?? "", /no address on wan1|no IPv4 gateway learned on wan1/);
    const seen = await lanBatch(lab);
    assert.deepEqual(Object.keys(seen), [`inet ${lab.uplink(2).router4}`]);
  });

  test(
    "the lease arrives: the uplink comes up with the learned gateway and carries its share",
    { timeout: 60_000 },
    async () => {
      dnsmasq = startDnsmasq(50, 59, u1().gateway4);
      await sleep(300);
      udhcpc = startDhcpClient(lab, "router", u1().wanIf);
      await waitStatus(lab, (x) => x.uplinks.every((u) => u.state === "up"), 30_000, "isp1 up by DHCP");
      const [addr] = await addresses4(lab, u1().wanIf);
      assert.match(addr ?? "", /\.5\d$/, "a lease from the first range");
      const seen = await lanBatch(lab);
      assert.ok((seen[`inet ${addr}`] ?? 0) >= 8, `isp1 carries its share: ${JSON.stringify(seen)}`);
      const routes = await lab.run("router", ["ip", "-4", "route", "show", "table", "201"]);
      assert.match(routes, new RegExp(`default via ${u1().gateway4.replace(/\./g, "\\.")} dev wan1`));
    },
  );

  test(
    "a new lease (address and gateway): new connections use it within 2 s, probes and rules follow, isp2 sees no error",
    { timeout: 90_000 },
    async (t) => {
      const [old] = await addresses4(lab, u1().wanIf);
      const holder = await lab.startHolder({
        from: "lan",
        dst: lab.addr.server4,
        port: lab.ports.echo,
        source: pinned(),
        intervalMs: 100,
        durationMs: 60_000,
      });
      assert.equal(holder.connected.greeting, `inet ${lab.uplink(2).router4}`, "holder pinned to isp2");
      const poller = await startPoller(lab, { durationMs: 30_000 });
      await sleep(1000);
      // The ISP renumbers: another range, another router; the client is made to ask again.
      await dnsmasq?.stop(2000);
      await rm(join(fx.dir, "dnsmasq.leases"), { force: true });
      dnsmasq = startDnsmasq(150, 159, gw2());
      await sleep(300);
      if (udhcpc) await forceNewLease(udhcpc);
      // The moment the client applied the new lease: its address is on wan1.
      let applied = 0;
      let now: string | undefined;
      for (let i = 0; i < 600 && !applied; i++) {
        const a = await addresses4(lab, u1().wanIf);
        now = a.find((x) => /\.15\d$/.test(x));
        if (now) applied = Date.now();
        else await sleep(50);
      }
      assert.ok(now && applied, "the client bound a lease from the new range");
      await waitStatus(lab, (x) => x.uplinks[0]?.state === "up", 10_000, "isp1 up again");
      await sleep(1500);
      const batches = await poller.stop();
      const hold = await holder.stop();

      const fromNew = batches.find((b) => b.t >= applied && (b.seen[`inet ${now}`] ?? 0) > 0);
      assert.ok(fromNew, "connections from the new address");
      t.diagnostic(`first connection from the new address ${fromNew.t - applied} ms after the lease`);
      if (fromNew.t - applied > LEASE_BOUND_MS / 2)
        t.diagnostic(timeline(batches, fx.daemon?.logs() ?? [], applied - 2500, 5000));
      assert.ok(fromNew.t - applied <= LEASE_BOUND_MS, `${fromNew.t - applied} ms (bound ${LEASE_BOUND_MS})`);
      const late = batches.filter((b) => b.t >= fromNew.t);
      assert.deepEqual(failures(late, fromNew.t), [], "every connection after that succeeds");
      assert.ok(!late.some((b) => b.seen[`inet ${old}`]), "nothing leaves from the old address");
      assert.equal(hold.failures, 0, `isp2's long connection never erred: ${hold.errors.join("; ")}`);

      // Probes, `from` rules and routes follow the lease.
      const probes = await fpingArgs(lab);
      assert.ok(
        probes.some((a) => a.includes(now)),
        `fping from ${now}: ${JSON.stringify(probes)}`,
      );
      assert.ok(!probes.some((a) => a.includes(old ?? "-")), "no probe from the old address");
      const rules = await lab.run("router", ["ip", "-4", "rule", "show"]);
      assert.match(rules, new RegExp(`from ${now.replace(/\./g, "\\.")} lookup 201`));
      assert.doesNotMatch(rules, new RegExp(`from ${(old ?? "-").replace(/\./g, "\\.")} `));
      const routes = await lab.run("router", ["ip", "-4", "route", "show", "table", "201"]);
      assert.match(routes, new RegExp(`default via ${gw2().replace(/\./g, "\\.")} dev wan1`));
      const s = await status(lab);
      assert.equal(s.uplinks[1]?.state, "up");
    },
  );
});

describe(
  "an uplink whose interface is absent at start and appears later as a bridge; gateway: auto that never gets one",
  { skip, timeout: 180_000 },
  () => {
    const lab = new UplinkLab({ uplinks: 3 });
    const u2 = () => lab.uplink(2);

    const config = () => {
      const probe = `targets: [${lab.addr.targets4.join(", ")}]`;
      const [isp1, isp3] = [lab.uplink(1), lab.uplink(3)];
      return uplinksConfig(
        {
          isp1: { interface: isp1.wanIf, gateway: isp1.gateway4, probe },
          isp2: { interface: "wanbr", gateway: u2().gateway4, probe: `${probe}, up_after: 5` },
          // wan3 has an address but no default route: no gateway will ever be learned.
          isp3: { interface: isp3.wanIf, gateway: "auto", probe },
        },
        ["balance: { from: [lan0], method: round-robin }"],
      );
    };
    // The test starts nflb, after `nflb check` of the config.
    const fx = new DaemonFixture(lab, config, {
      start: false,
      ready: null,
      // wan2's address goes to the bridge the test makes.
      prepare: async () => {
        await lab.run("router", ["ip", "-4", "addr", "flush", "dev", u2().wanIf]);
      },
    });

    before(() => fx.up(), { timeout: 60_000 });
    after(() => fx.down(), { timeout: 60_000 });

    test(
      "check warns, run starts, status says why; when the bridge appears it is probed and carries its share",
      { timeout: 120_000 },
      async () => {
        const check = await lab.exec("router", [
          "env",
          `NFLB_STATE_DIR=${fx.dir}`,
          NFLB,
          "check",
          "-c",
          fx.file,
        ]);
        assert.equal(check.code, 0, check.stderr);
        assert.match(check.stderr, /warning: uplinks\.isp2\.interface \(line 8.*interface wanbr not present/);

        const daemon = await fx.start();
        const s = await waitStatus(lab, (x) => x.uplinks[0]?.state === "up", 15_000, "isp1 up");
        assert.equal(s.uplinks[1]?.state, "down");
        assert.equal(s.uplinks[1]?.reason, "interface wanbr not present");
        const f4 = s.uplinks[1]?.families?.ipv4;
        assert.deepEqual([f4?.state, f4?.reason], ["down", "interface wanbr not present"]);
        assert.equal(s.uplinks[2]?.families?.ipv4.reason, "no IPv4 gateway learned on wan3");
        assert.equal(s.uplinks[0]?.families?.ipv4.state, "up");
        const cli = await lab.exec("router", [NFLB, "status"]);
        assert.match(cli.stdout, /interface wanbr not present/);
        assert.deepEqual(Object.keys(await lanBatch(lab)), [`inet ${lab.uplink(1).router4}`]);

        // A bridge of that name, with wan2 in it and the address on the bridge.
        const appeared = Date.now();
        await lab.run("router", ["ip", "-batch", "-"], {
          input: [
            "link add name wanbr type bridge",
            `link set ${u2().wanIf} master wanbr`,
            `addr add ${u2().router4}/24 dev wanbr`,
            "link set wanbr up",
            "",
          ].join("\n"),
        });
        const up = await waitStatus(
          lab,
          (x) => x.uplinks[1]?.state === "up",
          15_000,
          "isp2 up on the bridge",
        );
        assert.ok(
          Date.parse(up.uplinks[1]?.since ?? "") - appeared >= 5 * 200 - 100,
          "after up_after rounds",
        );
        const seen = await lanBatch(lab);
        assert.ok(
          (seen[`inet ${u2().router4}`] ?? 0) >= 8,
          `isp2 carries its share: ${JSON.stringify(seen)}`,
        );

        // gateway: auto with no gateway, then with one outside the subnet: down with the reason.
        assert.equal((await status(lab)).uplinks[2]?.reason, "no IPv4 gateway learned on wan3");
        await lab.run("router", [
          "ip",
          "route",
          "add",
          "default",
          "via",
          "203.0.113.1",
          "dev",
          "wan3",
          "onlink",
          "metric",
          "50",
        ]);
        const refused = await waitStatus(
          lab,
          (x) => /203\.0\.113\.1/.test(x.uplinks[2]?.reason ?? ""),
          5000,
          "the refusal as isp3's reason",
        );
        assert.equal(refused.uplinks[2]?.state, "down");
        assert.ok(
          daemon
            .logs()
            .some((l) =>
              /IPv4 gateway 203\.0\.113\.1 on wan3 is outside its subnets \(100\.64\.3\.0\/24\): refused/.test(
                String(l["msg"]),
              ),
            ),
          "a log line says why the gateway was refused",
        );
        assert.equal(daemon.proc.child.exitCode, null, "the daemon runs on");

        // The bridge goes: its new connections move to isp1 (the failure path).
        await lab.run("router", ["ip", "link", "del", "wanbr"]);
        const down = await waitStatus(lab, (x) => x.uplinks[1]?.state === "down", 5000, "isp2 down");
        assert.equal(down.uplinks[1]?.reason, "interface wanbr not present");
        assert.deepEqual(Object.keys(await lanBatch(lab)), [`inet ${lab.uplink(1).router4}`]);

        // A reload that adds an uplink whose interface is not there is accepted.
        const yaml = await readFile(fx.file, "utf8");
        await writeFile(fx.file, yaml.replace("balance:", "  isp4: { interface: ppp7 }\nbalance:"));
        await exec(["kill", "-HUP", String(daemon.proc.pid)], { timeoutMs: 5000 });
        // Until the link watcher has read ppp7 the new uplink is "assumed up" (no route, not in the split).
        const reloaded = await waitStatus(
          lab,
          (x) => x.uplinks.length === 4 && x.uplinks[3]?.state === "down",
          10_000,
          "the reload with isp4, down",
        );
        assert.equal(reloaded.uplinks[3]?.reason, "interface ppp7 not present");
        assert.deepEqual(Object.keys(await lanBatch(lab)), [`inet ${lab.uplink(1).router4}`]);
      },
    );
  },
);
