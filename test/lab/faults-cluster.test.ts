// Issue 14, fault injection into the cluster's coordinator (docs/CLUSTER.md §6-7), with real
// connections counted: etcd hanging (SIGSTOP: connections open, nothing answered) and etcd dying
// (SIGKILL) — every node keeps serving its own sources (outage mode), held connections never
// notice; after a restart no bucket moves (after a pause longer than the lease etcd revokes the
// leases and the buckets are dealt anew, connections living on); one node cut off from etcd alone —
// it fences itself within the lease (its peers report "etcd ok"), the survivors take its sources,
// nobody answers twice, and it rejoins within 7.5 s of the cut ending; a claim etcd applied but
// answered past the client's limit (a proxy holds the answer back) still ends in the kernel. Needs root.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fenceTiming, outageHold, reportMaxAge } from "../../src/cluster/fencing.ts";
import { writeFile } from "node:fs/promises";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { fileURLToPath } from "node:url";
import { CLUSTER_LAB, ClusterLab } from "../../src/lab/cluster-lab.ts";
import type { ClientSummary } from "../../src/lab/traffic-summary.ts";
import type { Holder } from "../../src/lab/traffic.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;
const LEASE_MS = 2000;
/**
 * A node whose etcd link returns is back within this: it finds its lease gone at its next
 * keep-alive and registers again, but claims only once its last "no etcd" witness report is too
 * old for a peer to still be renewing on its word (fencing.ts claimAllowed: 3.5 s at a 2 s lease);
 * two leases more for ticks, the peers' releases and a loaded machine (the whole suite runs in CI:
 * 2.5–4.5 s were seen, 20 s+ when a late claim answer was lost).
 */
const REJOIN_MS = (() => {
  const t = fenceTiming(LEASE_MS);
  return reportMaxAge(t) + outageHold(t) + t.marginMs + 2 * LEASE_MS;
})();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Node i's agent messages (pino lines `cluster: …`) since `since` (epoch ms), for a failure message. */
function agentLog(lab: ClusterLab, i: number, since: number): string {
  return (lab.agent(i)?.stdout() ?? "")
    .split("\n")
    .filter((l) => l.includes('"msg":"cluster: '))
    .map((l) => JSON.parse(l) as { time?: string; msg?: string })
    .map((l) => ({ at: Date.parse(l.time ?? "") - since, msg: l.msg ?? "" }))
    .filter((l) => l.at >= 0)
    .map((l) => `${l.at} ms ${l.msg}`)
    .join("\n");
}

/** source → the node that answered it (one per source, or "a,b" when several did). */
function homes(r: ClientSummary): Map<string, string> {
  return new Map(
    Object.entries(r.bySource).map(([s, seen]) => [
      s,
      [...new Set(Object.keys(seen).map((l) => l.split(" ")[0]))].join(","),
    ]),
  );
}

describe("faults: etcd hangs, dies, or one node loses it", { skip, timeout: 300_000 }, () => {
  const lab = new ClusterLab({ nodes: 3, lease: `${LEASE_MS}ms` });
  const round = (sources: readonly string[] = lab.sources, timeoutMs = 2000) =>
    lab.vipRound(sources, timeoutMs);
  const kernel = async () => Promise.all(lab.nodeIndexes.map((i) => lab.kernelBuckets(i)));

  /** Long-lived connections from `sources`, an exchange every 200 ms. */
  async function hold(sources: readonly string[]): Promise<Holder[]> {
    const out: Holder[] = [];
    for (const source of sources)
      out.push(
        await lab.startHolder({
          from: "client",
          dst: CLUSTER_LAB.vip,
          port: CLUSTER_LAB.port,
          source,
          intervalMs: 200,
          timeoutMs: 1500,
          durationMs: 60_000,
        }),
      );
    return out;
  }

  async function stopHolders(holders: Holder[], what: string): Promise<number> {
    let exchanges = 0;
    for (const h of holders) {
      const s = await h.stop();
      assert.equal(s.failures, 0, `${what}: a held connection noticed: ${JSON.stringify(s)}`);
      exchanges += s.exchanges;
    }
    return exchanges;
  }

  before(
    async () => {
      await lab.build();
      for (const i of lab.nodeIndexes) await lab.startAgent(i);
      await lab.startServers();
    },
    { timeout: 90_000 },
  );
  after(
    async () => {
      lab.resumeEtcd();
      await lab.destroy();
    },
    { timeout: 30_000 },
  );

  for (const fault of ["hangs (SIGSTOP)", "dies (SIGKILL)"] as const)
    test(
      `etcd ${fault} for 15 s: every source still served by its node; after a restart nothing moves`,
      { timeout: 90_000 },
      async () => {
        await sleep(1000);
        const base = await round();
        assert.equal(base.ok, lab.sources.length);
        const home = homes(base);
        const before = await kernel();
        const holders = await hold(lab.sources.slice(0, 6));
        await lab.clientCounters(true);
        await lab.resetRouterLog();
        if (fault.startsWith("hangs")) lab.pauseEtcd();
        else await lab.killEtcd();
        const t0 = Date.now();
        let connections = 0;
        while (Date.now() - t0 < 15_000) {
          const r = await round();
          connections += r.ok + r.failed;
          const s = Math.round((Date.now() - t0) / 1000);
          assert.equal(r.ok, lab.sources.length, `${s} s into the outage: ${JSON.stringify(r.errors)}`);
          assert.deepEqual(homes(r), home, `${s} s into the outage: a source changed node`);
          await sleep(1000);
        }
        for (const i of lab.nodeIndexes)
          assert.equal(lab.snapshot(i)?.mode, "outage", `node${i} is not in outage mode`);
        if (fault.startsWith("hangs")) lab.resumeEtcd();
        else await lab.startEtcd();
        const t1 = Date.now();
        while (Date.now() - t1 < 15_000 && !lab.nodeIndexes.every((i) => lab.snapshot(i)?.mode === "normal"))
          await sleep(200);
        await sleep(3000);
        for (const i of lab.nodeIndexes)
          assert.equal(lab.snapshot(i)?.mode, "normal", `node${i} after etcd came back`);
        const after = await kernel();
        const moved = after.reduce(
          (n, k, i) => n + k.filter((b) => !(before[i] ?? []).includes(b)).length,
          0,
        );
        // etcd back from a pause longer than the lease revokes the leases at once (its lessor's
        // clock ran on): every member registers again and the buckets are dealt anew (connections
        // held meanwhile live on). Back from a restart (SIGKILL, start) it extends them: no move.
        if (fault.startsWith("dies"))
          assert.equal(moved, 0, "buckets moved although membership did not change");
        const exchanges = await stopHolders(holders, `etcd ${fault}`);
        const again = await round();
        assert.equal(again.ok, lab.sources.length, JSON.stringify(again.errors));
        // After a pause the re-dealing may land any time after the members are back (it follows
        // their new registrations), so only the restart case promises the same homes.
        if (fault.startsWith("dies")) assert.deepEqual(homes(again), home);
        assert.deepEqual(await lab.doubleAnswers(), []);
        const c = await lab.clientCounters();
        assert.equal(c.rst, 0, `resets reached ${c.rst} open connections`);
        process.stdout.write(
          `# etcd ${fault}: ${connections} connections in 15 s, all answered by their own node; ${exchanges} held exchanges, none failed; ${moved} buckets moved after\n`,
        );
      },
    );

  test(
    `one node cut off from etcd: it fences itself within the lease, the others take its sources (lease + 5 s at most), no double answer; it rejoins within ${REJOIN_MS / 1000} s`,
    { timeout: 90_000 },
    async () => {
      await sleep(1000);
      const base = await round();
      assert.equal(base.ok, lab.sources.length);
      const home = homes(base);
      const victim = [...home].filter(([, n]) => n === "node2").map(([s]) => s);
      const others = [...home].filter(([, n]) => n !== "node2").map(([s]) => s);
      assert.ok(victim.length > 0 && others.length >= 3);
      const holders = await hold(others.slice(0, 4));
      await lab.clientCounters(true);
      await lab.resetRouterLog();
      // node2 loses etcd (and only etcd): its packets to etcd's client port are dropped.
      const cut = `table inet labcut {\n  chain out {\n    type filter hook output priority 0; policy accept;\n    ip daddr ${CLUSTER_LAB.etcd} tcp dport 2379 drop\n  }\n}\n`;
      await lab.run("node2", ["nft", "-f", "-"], { input: cut });
      const t0 = Date.now();
      // Its kernel stops taking new connections by itself within the lease (peers said "etcd ok").
      let fenced: number | null = null;
      while (Date.now() - t0 < LEASE_MS + 3000) {
        if ((await lab.kernelBuckets(2)).length === 0) {
          fenced = Date.now() - t0;
          break;
        }
        await sleep(100);
      }
      assert.ok(fenced !== null && fenced <= LEASE_MS + 1000, `node2 fenced after ${fenced} ms`);
      // Every source answered again (node2's by the others): full rounds, polled.
      let took: number | null = null;
      let during: ClientSummary | undefined;
      while (Date.now() - t0 < LEASE_MS + 5000) {
        during = await round(lab.sources, 1000);
        if (during.ok === lab.sources.length) {
          took = Date.now() - t0;
          break;
        }
        await sleep(100);
      }
      assert.ok(
        took !== null && during,
        `not every source served within ${LEASE_MS + 5000} ms: ${JSON.stringify(during?.errors)}`,
      );
      for (const [src, n] of homes(during)) {
        assert.ok(!n.includes("node2"), `${src} still answered by the cut-off node2`);
        if (!victim.includes(src)) assert.equal(n, home.get(src), `${src} moved although its node was fine`);
      }
      assert.deepEqual(await lab.doubleAnswers(), []);
      // The cut ends: node2 registers again and gets a share back; connections held elsewhere live on.
      await lab.run("node2", ["nft", "delete", "table", "inet", "labcut"]);
      const t1 = Date.now();
      let sizes: number[] = [];
      let rejoined: number | null = null;
      while (Date.now() - t1 < 20_000) {
        sizes = (await kernel()).map((k) => k.length);
        if (sizes.reduce((a, b) => a + b, 0) === lab.options.buckets && Math.min(...sizes) > 0) {
          rejoined = Date.now() - t1;
          break;
        }
        await sleep(100);
      }
      const log = () => `; node2's log since the cut (it ended at ${t1 - t0} ms):\n${agentLog(lab, 2, t0)}`;
      assert.ok(Math.min(...sizes) > 0, `node2 got nothing back: ${sizes.join("/")}${log()}`);
      assert.ok(
        rejoined !== null && rejoined <= REJOIN_MS,
        `node2 back with ${sizes.join("/")} after ${rejoined ?? "more than 20000"} ms, not within ${REJOIN_MS} ms${log()}`,
      );
      const exchanges = await stopHolders(holders, "node2 cut off");
      const final = await round();
      assert.equal(final.ok, lab.sources.length);
      assert.deepEqual(await lab.doubleAnswers(), []);
      const c = await lab.clientCounters();
      assert.equal(c.rst, 0, `resets reached ${c.rst} open connections`);
      process.stdout.write(
        `# node2 cut off from etcd: fenced after ${fenced} ms, its ${victim.length} sources served by others after ${took} ms; ` +
          `rejoined with ${sizes.join("/")} buckets after ${rejoined} ms; ${exchanges} held exchanges elsewhere, none failed\n`,
      );
    },
  );

  test(
    "a claim etcd applied but answered past the client's limit: the node still serves its share",
    { timeout: 90_000 },
    async () => {
      // node2 restarts behind a proxy that holds back the answer of the claim completing its share
      // (what a loaded etcd's fsync or a socket just back from a cut does). Taken as lost, that
      // claim used to leave its buckets in etcd as node2's and in nobody's kernel: "86/0/85".
      const share = Math.floor(lab.options.buckets / lab.nodeIndexes.length);
      await lab.stopAgent(2);
      const proxy = lab.spawn("node2", [
        process.execPath,
        "--import",
        import.meta.resolve("tsx"),
        fileURLToPath(new URL("../../testkit/etcd-late-proxy.ts", import.meta.url)),
        "--listen",
        "127.0.0.1:23790",
        "--target",
        lab.etcdUrl,
        "--key",
        "/nflb/cluster/lab/holds/node2",
        "--min-buckets",
        String(share),
      ]);
      await proxy.waitForLine(/"ready":true/, 15_000);
      const real = lab.configText(2);
      await writeFile(lab.configPath(2), real.replace(lab.etcdUrl, "http://127.0.0.1:23790"));
      try {
        const t0 = Date.now();
        await lab.startAgent(2, { waitOwned: false });
        let sizes: number[] = [];
        let back: number | null = null;
        while (Date.now() - t0 < 20_000) {
          sizes = (await kernel()).map((k) => k.length);
          if (sizes.reduce((a, b) => a + b, 0) === lab.options.buckets && Math.min(...sizes) > 0) {
            back = Date.now() - t0;
            break;
          }
          await sleep(100);
        }
        const log = `; node2's log:\n${agentLog(lab, 2, t0)}`;
        assert.match(proxy.stdout(), /"delayed":\d+/, `the proxy never held a claim back${log}`);
        assert.ok(back !== null, `node2 got nothing back: ${sizes.join("/")}${log}`);
        assert.ok(back <= LEASE_MS + 3000, `node2 served its share only after ${back} ms${log}`);
        process.stdout.write(`# a claim answered late: node2 served its share ${back} ms after its start\n`);
      } finally {
        await lab.stopAgent(2);
        await proxy.stop(5000);
        await writeFile(lab.configPath(2), real);
        await lab.startAgent(2);
      }
    },
  );
});
