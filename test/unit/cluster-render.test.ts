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
import { hex } from "../../src/nft/text.ts";
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

  test("the filter: established first, no reply to mid-stream packets, owned buckets by jhash", () => {
    const r = buildCluster(p);
    const body = objectsText(r.section.objects);
    assert.match(body, /set cluster_owned \{\n\t\ttypeof numgen random mod 1\n\t\tflags timeout\n\t\}/);
    const chain = body.slice(body.indexOf("chain cluster_in"), body.indexOf("chain cluster_pre"));
    const rules = chain
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("chain") && l !== "}");
    assert.deepEqual(rules, [
      "ct state established,related accept",
      "ct state invalid drop",
      "meta l4proto tcp tcp flags & (fin | syn | rst | ack) != syn drop",
      `meta nfproto ipv4 jhash ip saddr mod 256 seed ${hex(p.seed)} @cluster_owned accept`,
      `meta nfproto ipv6 jhash ip6 saddr mod 256 seed ${hex(p.seed)} @cluster_owned accept`,
      "drop",
    ]);
    assert.match(body, /type filter hook prerouting priority mangle - 5;/);
    assert.match(body, /ip daddr 192\.0\.2\.2 meta pkttype multicast meta pkttype set host/);
    assert.deepEqual(r.input, [
      'iifname "eth0" ip daddr 192.0.2.2 jump cluster_in',
      'iifname "eth0" icmpv6 type nd-neighbor-solicit @th,64,128 0x20010db8000000000000000000000002 drop',
      'iifname "eth0" ip6 daddr 2001:db8::2 jump cluster_in',
    ]);
  });

  test("source-port hashing keeps port-less protocols on the source alone", () => {
    const r = buildCluster(planCluster(cfg("  hash: source-port").cluster!));
    const body = objectsText(r.section.objects);
    assert.match(body, /meta l4proto \{ tcp, udp \} jhash ip saddr \. th sport mod 256/);
    assert.match(body, /meta l4proto != \{ tcp, udp \} jhash ip saddr mod 256/);
  });

  test("ARP answers for the VIP carry the shared MAC", () => {
    const t = buildCluster(p).arpTable;
    assert.ok(t);
    const a = serialize({ tables: [t], absent: [] });
    assert.match(a, /^add table arp nflb\ndelete table arp nflb\ntable arp nflb \{/);
    assert.match(a, /arp saddr ip 192\.0\.2\.2 arp saddr ether set 03:bf:c0:00:02:02/);
    const v6only = planCluster(
      parseConfig("version: 1\ncluster: { name: x, node: a, vip: '2001:db8::2', interface: eth0 }").cluster!,
    );
    assert.equal(buildCluster(v6only).arpTable, null);
  });

  test("owned buckets carry their fence as an element timeout", () => {
    const r = buildCluster(p, { buckets: [1, 5], timeoutMs: 1666.6 });
    assert.match(objectsText(r.section.objects), /elements = \{ 1 timeout 1667ms, 5 timeout 1667ms \}/);
    assert.equal(
      renderOwnedUpdate({ buckets: [3, 4], timeoutMs: 900 }),
      "flush set inet nflb cluster_owned\ntable inet nflb {\n\tset cluster_owned {\n\t\ttypeof numgen random mod 1\n\t\tflags timeout\n\t\telements = { 3 timeout 900ms, 4 timeout 900ms }\n\t}\n}\n",
    );
    assert.equal(renderOwnedUpdate({ buckets: [3], timeoutMs: 0 }), "flush set inet nflb cluster_owned\n");
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
    assert.match(d.nft, /set cluster_owned \{[^}]*flags timeout[^}]*\}/);
    assert.doesNotMatch(d.nft, /elements =/, "nothing is owned until the agent says so");
    assert.match(d.nft, /iifname "eth0" ip daddr 192\.0\.2\.2 jump cluster_in/);
    assert.match(d.nft, /table arp nflb \{/);
    const keys = d.sysctls.map((s) => s.key);
    assert.ok(keys.includes("net/ipv4/conf/eth0/arp_announce"), keys.join(" "));
    assert.equal(new Set(keys).size, keys.length, "each sysctl once");
  });

  test("without a cluster (e.g. after a reload removed it) the ARP table goes in the same transaction", () => {
    const none = parseConfig("version: 1\nuplinks:\n  isp1: { interface: wan1, gateway: 100.64.1.1 }\n");
    const d = desiredState(none, allHealthy(none), { interfaces: new Map() });
    assert.match(d.nft, /^add table arp nflb\ndelete table arp nflb\n$/m);
    assert.doesNotMatch(d.nft, /table arp nflb \{/);
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
    assert.match(applied[0] ?? "", /flush set inet nflb cluster_owned/);
    now += 1500;
    assert.deepEqual(host.ownedElements(), [
      { key: "3", timeout: "500ms" },
      { key: "7", timeout: "500ms" },
    ]);
    now += 600;
    assert.deepEqual(host.ownedElements(), [], "a lapsed fence is not renewed by a re-apply");
  });
});
