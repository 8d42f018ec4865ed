import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import {
  clusterMac,
  clusterSeed,
  clusterSysctls,
  planCluster,
  buildCluster,
  renderOwnedUpdate,
} from "../../src/cluster/render.ts";
import { DaemonClusterHost } from "../../src/cluster/daemon-host.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";
import { addrBytes, concatKey, nftJhash, portBytes } from "../../src/nft/ruleset/jhash.ts";
import { parseAddr } from "../../src/net/ip.ts";
import { kernelWith, tcp, trace } from "./tracer-support.ts";
import { objectsText, serialize } from "../../src/nft/serialize.ts";

const cfg = (extra = "") =>
  parseConfig(`version: 1
cluster:
  name: web
  node: a
  vip: [192.0.2.2, "2001:db8::2"]
  interface: eth0
  buckets: 256
${extra}`);

describe("cluster rendering", () => {
  const c = cfg();
  const p = planCluster(c.cluster!);

  test("plan: shared MACs in the NLB multicast convention, one seed per cluster name", () => {
    assert.equal(clusterMac("192.0.2.2"), "03:bf:c0:00:02:02");
    assert.equal(clusterMac("2001:db8::a:2"), "03:bf:00:0a:00:02");
    assert.equal(p.seed, clusterSeed("web"));
    assert.notEqual(clusterSeed("web"), clusterSeed("db"));
    assert.equal(p.vip6, "2001:db8::2");
  });

  const kernel = (c: ReturnType<typeof cfg>, owned: number[] = []) =>
    kernelWith(
      desiredState(c, allHealthy(c), { interfaces: new Map() }).nft,
      renderOwnedUpdate({ buckets: owned, timeoutMs: 60_000 }),
    );
  const all = Array.from({ length: 256 }, (_, b) => b);
  const toVip = (src: string, more = {}) =>
    tcp(src, src.includes(":") ? "2001:db8::2" : "192.0.2.2", 80, { iif: "eth0", path: "input", ...more });
  const bucketOf = (src: string) => {
    const a = parseAddr(src);
    assert.ok(a);
    return nftJhash(addrBytes(a), 256, p.seed);
  };

  test("the filter: established first, no reply to mid-stream packets, owned buckets by jhash", () => {
    const none = kernel(c);
    const mine = kernel(c, all);
    for (const src of ["198.51.100.7", "2001:db8:1::7"]) {
      assert.equal(trace(mine.ruleset, toVip(src)).verdict, "accept", `${src}: owned`);
      assert.equal(trace(none.ruleset, toVip(src)).verdict, "drop", `${src}: not owned`);
      assert.equal(trace(none.ruleset, toVip(src, { ctState: "established" })).verdict, "accept");
      assert.equal(trace(mine.ruleset, toVip(src, { ctState: "invalid" })).verdict, "drop");
      // A mid-stream packet of a connection another node holds looks new here: dropped, never reset.
      assert.equal(trace(mine.ruleset, toVip(src, { tcpFlags: ["ack"] })).verdict, "drop");
    }
    // The bucket is the kernel's jhash of the source with the cluster's seed.
    for (const src of ["198.51.100.7", "198.51.100.8", "203.0.113.99"]) {
      const k = kernel(c, [bucketOf(src)]);
      assert.equal(trace(k.ruleset, toVip(src)).verdict, "accept", src);
      const other = kernel(
        c,
        all.filter((b) => b !== bucketOf(src)),
      );
      assert.equal(trace(other.ruleset, toVip(src)).verdict, "drop", src);
    }
    // Other interfaces and addresses are not the cluster's.
    assert.equal(trace(none.ruleset, toVip("198.51.100.7", { iif: "eth1" })).verdict, "accept");
  });

  test("frames for the multicast MAC are taken as the host's; the VIP's neighbour solicitations are dropped", () => {
    const k = kernel(c);
    const pre = trace(k.ruleset, toVip("198.51.100.7", { pkttype: "multicast", ctState: "established" }));
    assert.ok(
      pre.steps.some((s) => s.chain === "cluster_pre" && s.effects.includes("meta pkttype set host")),
    );
    const ns = (target: string) =>
      trace(k.ruleset, {
        family: 6,
        saddr: "fe80::1",
        daddr: "ff02::1:ff00:2",
        l4proto: "ipv6-icmp",
        icmpv6Type: "nd-neighbor-solicit",
        ndTarget: target,
        iif: "eth0",
        path: "input",
      }).verdict;
    assert.equal(ns("2001:db8::2"), "drop");
    assert.equal(ns("2001:db8::3"), "accept");
  });

  test("source-port hashing keeps port-less protocols on the source alone", () => {
    const sp = cfg("  hash: source-port");
    const sp4 = planCluster(sp.cluster!);
    const src = "198.51.100.7";
    const a = parseAddr(src);
    assert.ok(a);
    for (const sport of [40000, 40001, 50000]) {
      const bucket = nftJhash(concatKey(addrBytes(a), portBytes(sport)), 256, sp4.seed);
      assert.equal(trace(kernel(sp, [bucket]).ruleset, toVip(src, { sport })).verdict, "accept", `${sport}`);
    }
    const icmp = { l4proto: "icmp" as const, sport: undefined, dport: undefined };
    const bucket = nftJhash(addrBytes(a), 256, sp4.seed);
    assert.equal(trace(kernel(sp, [bucket]).ruleset, toVip(src, icmp)).verdict, "accept");
    assert.equal(
      trace(
        kernel(
          sp,
          all.filter((b) => b !== bucket),
        ).ruleset,
        toVip(src, icmp),
      ).verdict,
      "drop",
    );
  });

  test("ARP answers for the VIP carry the shared MAC, in a table of their own", () => {
    const k = kernelWith(serialize({ tables: [buildCluster(p).arpTable!], absent: [] }));
    const chain = k.ruleset.table("arp", "nflb")?.chains.get("cluster_arp_out");
    assert.equal(chain?.base?.hook, "output");
    const set = chain?.rules[0]?.stmts.find((s) => s.k === "set");
    assert.ok(set?.k === "set" && set.target.name === "arp saddr ether");
    assert.ok(set.value.k === "lit" && set.value.text === "03:bf:c0:00:02:02");
    const v6only = planCluster(
      parseConfig("version: 1\ncluster: { name: x, node: a, vip: '2001:db8::2', interface: eth0 }").cluster!,
    );
    assert.equal(buildCluster(v6only).arpTable, null);
  });

  test("owned buckets carry their fence as an element timeout", () => {
    const k = kernel(c, [1, 5]);
    k.apply(renderOwnedUpdate({ buckets: [3, 4], timeoutMs: 900 }));
    const owned = k.ruleset.table("inet", "nflb")?.sets.get("cluster_owned");
    assert.deepEqual(
      owned?.elements.map((e) => [e.key[0]?.lo, e.timeoutMs]),
      [
        [3n, 900],
        [4n, 900],
      ],
    );
    k.apply(renderOwnedUpdate({ buckets: [3], timeoutMs: 0 }));
    assert.equal(owned && k.ruleset.table("inet", "nflb")?.sets.get("cluster_owned")?.elements.length, 0);
    const fenced = objectsText(buildCluster(p, { buckets: [1, 5], timeoutMs: 1666.6 }).section.objects);
    assert.ok(fenced.includes("1 timeout 1667ms, 5 timeout 1667ms"));
  });

  test("sysctls: no redirects, own address in ARP, forwarding off only for a pure cluster node", () => {
    const keys = clusterSysctls(c).map((s) => `${s.key}=${s.value}`);
    assert.deepEqual(keys, [
      "net/ipv4/conf/all/send_redirects=0",
      "net/ipv4/conf/eth0/send_redirects=0",
      "net/ipv4/conf/eth0/arp_announce=2",
      "net/ipv4/conf/eth0/drop_unicast_in_l2_multicast=0",
      "net/ipv6/conf/eth0/drop_unicast_in_l2_multicast=0",
      "net/ipv4/ip_forward=0",
    ]);
    const withService = cfg(
      "services:\n  web: { listen: 192.0.2.2:80, backends: [{ address: 10.0.0.1:80 }] }",
    );
    assert.ok(!clusterSysctls(withService).some((s) => s.key === "net/ipv4/ip_forward"));
  });
});

describe("cluster in the whole data plane", () => {
  const c = cfg();

  test("plan/apply render the filter with no bucket accepted, the ARP table and the sysctls", () => {
    const d = desiredState(c, allHealthy(c), { interfaces: new Map() });
    const k = kernelWith(d.nft);
    assert.equal(k.ruleset.table("inet", "nflb")?.sets.get("cluster_owned")?.elements.length, 0);
    const toVip = tcp("198.51.100.7", "192.0.2.2", 80, { iif: "eth0", path: "input" });
    assert.equal(trace(k.ruleset, toVip).verdict, "drop", "nothing is owned until the agent says so");
    assert.ok(k.ruleset.table("arp", "nflb"));
    const keys = d.sysctls.map((s) => s.key);
    assert.ok(keys.includes("net/ipv4/conf/eth0/arp_announce"), keys.join(" "));
    assert.equal(new Set(keys).size, keys.length, "each sysctl once");
  });

  test("without a cluster (e.g. after a reload removed it) the ARP table goes in the same transaction", () => {
    const k = kernelWith(desiredState(c, allHealthy(c), { interfaces: new Map() }).nft);
    const none = parseConfig("version: 1\nuplinks:\n  isp1: { interface: wan1, gateway: 100.64.1.1 }\n");
    k.apply(desiredState(none, allHealthy(none), { interfaces: new Map() }).nft);
    assert.equal(k.ruleset.table("arp", "nflb"), undefined);
    assert.ok(k.ruleset.table("inet", "nflb")?.chains.has("decide"));
  });

  test("in the daemon: a full replace carries the owned buckets with what is left of their fence", async () => {
    let now = 1000;
    const applied: string[] = [];
    const host = new DaemonClusterHost(
      {
        exclusive: (fn) => fn(),
        config: () => c,
        adopt: () => Promise.resolve(),
      },
      () => now,
      (script) => Promise.resolve(applied.push(script)),
    );
    assert.deepEqual(host.ownedElements(), []);
    await host.setOwned({ buckets: [3, 7], timeoutMs: 2000 });
    const k = kernelWith(desiredState(c, allHealthy(c), { interfaces: new Map() }).nft, applied[0] ?? "");
    const owned = () => k.ruleset.table("inet", "nflb")?.sets.get("cluster_owned")?.elements;
    assert.deepEqual(
      owned()?.map((e) => [e.key[0]?.lo, e.timeoutMs]),
      [
        [3n, 2000],
        [7n, 2000],
      ],
    );
    now += 1500;
    // A full replace now writes what is left of each fence into the model's owned set.
    assert.deepEqual(host.ownedElements(), [
      { key: "3", timeout: "500ms" },
      { key: "7", timeout: "500ms" },
    ]);
    now += 600;
    assert.deepEqual(host.ownedElements(), [], "a lapsed fence is not renewed by a re-apply");
  });
});
