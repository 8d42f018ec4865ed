// Builds real namespaces: needs root, iproute2 and nft. Skipped (with the reason) otherwise.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { exec } from "../../src/system/exec.ts";
import { cleanupStale } from "../../src/lab/cleanup.ts";
import {
  LAB_RUN_DIR,
  hostLinkName,
  newLabPrefix,
  ownerFilePath,
  prefixOfNetns,
} from "../../src/lab/names.ts";
import { addNetns, isAlive, labUnavailableReason, listNetns } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

async function labNamespaces(prefix: string): Promise<string[]> {
  return (await listNetns()).filter((n) => prefixOfNetns(n) === prefix);
}

/** Ping from a role; true when a reply came back. */
async function pings(lab: UplinkLab, role: string, dst: string): Promise<boolean> {
  const r = await lab.exec(role, ["ping", "-n", "-q", "-c", "1", "-W", "2", dst], { timeoutMs: 5000 });
  return r.code === 0;
}

/** After a link comes back, IPv6 needs DAD and neighbour discovery again: retry for a few seconds. */
async function pingsWithin(lab: UplinkLab, role: string, dst: string, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  do if (await pings(lab, role, dst)) return true;
  while (Date.now() < end);
  return false;
}

describe("uplink lab (3 uplinks, IPv6, host link)", { skip, timeout: 120_000 }, () => {
  const lab = new UplinkLab({ uplinks: 3, v6: true, hostLink: true, clientAddresses: 4 });
  const echo = lab.ports.echo;

  before(() => lab.build(), { timeout: 60_000 });
  // Runs even when build() failed halfway: destroy() waits for it and removes what exists.
  after(() => lab.destroy(), { timeout: 30_000 });

  test("the router reaches every ISP gateway over IPv4 and IPv6", { timeout: 20_000 }, async () => {
    for (const u of lab.uplinks) {
      assert.ok(await pings(lab, "router", u.gateway4), `ping ${u.gateway4}`);
      assert.ok(await pings(lab, "router", u.gateway6), `ping ${u.gateway6}`);
    }
  });

  test("the router starts with no default route and forwarding off", { timeout: 10_000 }, async () => {
    assert.equal((await lab.run("router", ["ip", "route", "show", "default"])).trim(), "");
    assert.equal((await lab.run("router", ["sysctl", "-n", "net.ipv4.ip_forward"])).trim(), "0");
    const r = await lab.runClient({
      from: "lan",
      dst: lab.addr.server4,
      port: echo,
      timeoutMs: 500,
      deadlineMs: 2000,
    });
    assert.equal(r.ok, 0, "the LAN must not reach the internet before nflb sets the router up");
  });

  test("the internet answers from inside every ISP (TCP, UDP, IPv6)", { timeout: 30_000 }, async () => {
    for (const u of lab.uplinks) {
      const tcp = await lab.runClient({ from: `isp${u.index}`, dst: lab.addr.server4, port: echo, count: 3 });
      assert.deepEqual(tcp.bySeen, { [`inet ${u.ispUp4}`]: 3 }, JSON.stringify(tcp));
    }
    const udp = await lab.runClient({
      from: "isp1",
      dst: lab.addr.server4,
      port: echo,
      proto: "udp",
      count: 2,
    });
    assert.deepEqual(udp.bySeen, { [`inet ${lab.uplink(1).ispUp4}`]: 2 });
    const v6 = await lab.runClient({ from: "isp2", dst: lab.addr.server6, port: echo, count: 2 });
    assert.deepEqual(v6.bySeen, { [`inet ${lab.uplink(2).ispUp6}`]: 2 });
    for (const t of [...lab.addr.targets4, ...lab.addr.targets6]) {
      assert.ok(await pings(lab, "isp3", t), `ping ${t}`);
    }
  });

  test("probe targets serve HTTP on 80 and DNS on 53", { timeout: 20_000 }, async () => {
    const script = `
      const dns = await import("node:dns/promises");
      const r = new dns.Resolver({ timeout: 1000, tries: 1 });
      r.setServers([process.argv[1]]);
      const res = await fetch("http://" + process.argv[1] + "/", { signal: AbortSignal.timeout(2000) });
      console.log(JSON.stringify({ status: res.status, body: await res.text(), a: await r.resolve4("probe.example") }));`;
    const target = lab.addr.targets4[0] ?? "";
    const out = await lab.run("isp1", [process.execPath, "--input-type=module", "-e", script, target]);
    assert.deepEqual(JSON.parse(out), {
      status: 200,
      body: `inet ${lab.uplink(1).ispUp4}\n`,
      a: ["192.0.2.53"],
    });
  });

  test(
    "an ISP forwards its own customer's packets and drops any other source",
    { timeout: 30_000 },
    async () => {
      const u1 = lab.uplink(1);
      await lab.resetIspCounters(1);
      // Send from the router out of wan1 with both wan1's and wan2's address as source.
      await lab.run("router", ["ip", "route", "replace", `${lab.addr.server4}/32`, "via", u1.gateway4]);
      try {
        const own = await lab.runClient({
          from: "router",
          dst: lab.addr.server4,
          port: echo,
          sources: [u1.router4],
        });
        assert.deepEqual(own.bySeen, { [`inet ${u1.router4}`]: 1 });
        const foreign = lab.uplink(2).router4;
        const spoofed = await lab.runClient({
          from: "router",
          dst: lab.addr.server4,
          port: echo,
          sources: [foreign],
          timeoutMs: 500,
        });
        assert.equal(spoofed.ok, 0);
        const c = await lab.ispCounters(1);
        assert.ok(c.foreignDropped > 0, JSON.stringify(c));
        assert.ok(c.forwardedOut.packets > 0 && c.forwardedIn.packets > 0, JSON.stringify(c));
        const sources = new Set(
          c.arrived.filter((f) => f.destination === lab.addr.server4).map((f) => f.source),
        );
        assert.deepEqual([...sources].sort(), [u1.router4, foreign].sort());
        const other = await lab.ispCounters(2);
        assert.equal(other.arrived.length, 0, "nothing may leave through ISP 2");
      } finally {
        await lab.run("router", ["ip", "route", "del", `${lab.addr.server4}/32`]);
      }
    },
  );

  test("cutUpstream keeps the gateway reachable but forwards nothing", { timeout: 30_000 }, async () => {
    const u2 = lab.uplink(2);
    await lab.run("router", ["ip", "route", "replace", `${lab.addr.server4}/32`, "via", u2.gateway4]);
    const client = {
      from: "router",
      dst: lab.addr.server4,
      port: echo,
      sources: [u2.router4],
      timeoutMs: 500,
    };
    try {
      await lab.cutUpstream(2);
      assert.ok(await pings(lab, "router", u2.gateway4));
      assert.equal((await lab.runClient(client)).ok, 0);
      assert.ok((await lab.ispCounters(2)).cutDropped > 0);
      const link = JSON.parse(await lab.run("router", ["ip", "-j", "link", "show", "wan2"])) as {
        flags: string[];
      }[];
      assert.ok(link[0]?.flags.includes("LOWER_UP"), "carrier stays up while upstream is cut");
      await lab.restoreUpstream(2);
      assert.equal((await lab.runClient(client)).ok, 1);
    } finally {
      await lab.restoreUpstream(2);
      await lab.run("router", ["ip", "route", "del", `${lab.addr.server4}/32`]);
    }
  });

  test("a holder keeps exchanging lines until the upstream is cut", { timeout: 30_000 }, async () => {
    const u1 = lab.uplink(1);
    await lab.run("router", ["ip", "route", "replace", `${lab.addr.server4}/32`, "via", u1.gateway4]);
    try {
      const h = await lab.startHolder({
        from: "router",
        dst: lab.addr.server4,
        port: echo,
        source: u1.router4,
        intervalMs: 50,
        timeoutMs: 300,
        durationMs: 10_000,
      });
      assert.equal(h.connected.greeting, `inet ${u1.router4}`);
      await new Promise((r) => setTimeout(r, 400));
      await lab.cutUpstream(1);
      await new Promise((r) => setTimeout(r, 600));
      const s = await h.stop();
      assert.equal(s.end, "signal");
      assert.ok(s.exchanges >= 3, JSON.stringify(s));
      assert.ok(s.failures >= 1 && s.firstFailureMs !== null, JSON.stringify(s));
    } finally {
      await lab.restoreUpstream(1);
      await lab.run("router", ["ip", "route", "del", `${lab.addr.server4}/32`]);
    }
  });

  test("setLoss drops about that share of forwarded packets", { timeout: 30_000 }, async () => {
    const u3 = lab.uplink(3);
    await lab.run("router", ["ip", "route", "replace", `${lab.addr.server4}/32`, "via", u3.gateway4]);
    const client = {
      from: "router",
      dst: lab.addr.server4,
      port: echo,
      proto: "udp" as const,
      sources: [u3.router4],
      count: 60,
      parallel: 20,
      timeoutMs: 300,
    };
    try {
      await lab.setLoss(3, 0.5);
      const lossy = await lab.runClient(client);
      // 60 tries at 50 %: outside 10..50 successes is a one-in-a-million event.
      assert.ok(lossy.ok >= 10 && lossy.ok <= 50, JSON.stringify(lossy));
      assert.ok((await lab.ispCounters(3)).lossDropped > 0);
      await lab.setLoss(3, 0);
      assert.equal((await lab.runClient(client)).ok, 60);
    } finally {
      await lab.setLoss(3, 0);
      await lab.run("router", ["ip", "route", "del", `${lab.addr.server4}/32`]);
    }
  });

  test(
    "carrierDown shows NO-CARRIER on the router's wan; carrierUp restores it",
    { timeout: 30_000 },
    async () => {
      const flags = async () =>
        (
          JSON.parse(await lab.run("router", ["ip", "-j", "link", "show", "wan3"])) as { flags: string[] }[]
        )[0]?.flags ?? [];
      await lab.carrierDown(3);
      assert.ok((await flags()).includes("NO-CARRIER"));
      assert.equal(await pings(lab, "router", lab.uplink(3).gateway4), false);
      await lab.carrierUp(3);
      assert.ok((await flags()).includes("LOWER_UP"));
      assert.ok(await pingsWithin(lab, "router", lab.uplink(3).gateway4, 5000));
      assert.ok(
        await pingsWithin(lab, "router", lab.uplink(3).gateway6, 5000),
        "IPv6 addresses survive the carrier loss",
      );
    },
  );

  test("the host reaches the router over the host link", { timeout: 10_000 }, async () => {
    const r = await exec(["ping", "-n", "-q", "-c", "1", "-W", "2", "100.64.255.2"], { timeoutMs: 5000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  test(
    "destroy removes every namespace, process, the host link and the owner file",
    { timeout: 30_000 },
    async () => {
      const pids = [lab.internetServer?.pid ?? 0];
      assert.ok(pids.every((p) => p > 0 && isAlive(p)));
      await lab.destroy();
      await lab.destroy(); // idempotent
      assert.deepEqual(await labNamespaces(lab.prefix), []);
      assert.ok(pids.every((p) => !isAlive(p)));
      assert.equal(existsSync(ownerFilePath(lab.prefix)), false);
      const link = await exec(["ip", "link", "show", hostLinkName(lab.prefix)]);
      assert.notEqual(link.code, 0, "host link must be gone");
    },
  );
});

describe("uplink lab with several LAN clients", { skip, timeout: 60_000 }, () => {
  const lab = new UplinkLab({ uplinks: 1, lanClients: 2 });
  before(() => lab.build(), { timeout: 30_000 });
  after(() => lab.destroy(), { timeout: 30_000 });

  test("clients share the router's lan0 bridge", { timeout: 10_000 }, async () => {
    assert.deepEqual(lab.ns.lanClients, [lab.netns("lan"), lab.netns("lan2")]);
    assert.ok(await pings(lab, "lan2", lab.addr.lan.router4));
    assert.ok(await pings(lab, "lan", lab.addr.lan.clients[1]?.v4 ?? ""));
  });
});

describe("cleanupStale", { skip, timeout: 30_000 }, () => {
  const prefix = newLabPrefix();
  after(async () => {
    await exec(["ip", "netns", "del", `${prefix}router`]);
  });

  test("removes namespaces whose owner process is gone", async () => {
    const dead = spawn("true");
    await new Promise((r) => dead.on("close", r));
    assert.ok(dead.pid && !isAlive(dead.pid));
    await mkdir(LAB_RUN_DIR, { recursive: true });
    await writeFile(ownerFilePath(prefix), `${dead.pid}\n`);
    await addNetns(`${prefix}router`);
    const removed = await cleanupStale();
    assert.ok(removed.includes(prefix));
    assert.deepEqual(await labNamespaces(prefix), []);
    assert.equal(existsSync(ownerFilePath(prefix)), false);
  });
});
