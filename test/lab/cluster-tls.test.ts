// The cluster with etcd locked down: TLS with client certificates from the lab's own CA (openssl),
// and etcd's auth (root, plus a user that may touch /nflb/ only). Members join, own buckets and
// serve the VIP; a signed push reaches them; the password never shows in a log or status.
// Real namespaces, Debian's etcd, real traffic. Needs root; skipped otherwise.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { ClusterLab } from "../../src/lab/cluster-lab.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;
const NFLB = fileURLToPath(new URL("../../bin/nflb", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("cluster over etcd with TLS client certificates and auth", { skip, timeout: 150_000 }, () => {
  const lab = new ClusterLab({ nodes: 2, tls: true, buckets: 16, sources: 40 });

  before(
    async () => {
      await lab.build();
      await lab.startServers();
    },
    { timeout: 60_000 },
  );
  after(() => lab.destroy(), { timeout: 30_000 });

  test("etcd refuses anonymous clients; nflb members join, own buckets and serve the VIP", async () => {
    const anon = await lab.etcdctlAnonymous(["get", "--prefix", "/nflb/"]);
    assert.notEqual(anon.code, 0, "etcd answered a client without a user");
    for (const i of lab.nodeIndexes) await lab.startAgent(i);
    const t0 = Date.now();
    while (Date.now() - t0 < 15_000 && !lab.nodeIndexes.every((i) => lab.snapshot(i)?.buckets_owned === 8))
      await sleep(100);
    for (const i of lab.nodeIndexes) assert.equal(lab.snapshot(i)?.buckets_owned, 8, `node${i}`);
    const kernel = await Promise.all(lab.nodeIndexes.map((i) => lab.kernelBuckets(i)));
    assert.deepEqual(
      kernel.flat().sort((a, b) => a - b),
      Array.from({ length: 16 }, (_, b) => b),
    );
    await lab.resetRouterLog();
    const r = await lab.vipRound();
    assert.equal(r.ok, lab.sources.length, JSON.stringify(r.errors));
    assert.deepEqual(await lab.doubleAnswers(), []);
    // The members' keys are there, written as user nflb (root reads them back).
    const keys = await lab.etcdctl(["get", "--prefix", "--keys-only", "/nflb/cluster/lab/members/"]);
    assert.match(keys, /members\/node1/);
    assert.match(keys, /members\/node2/);
  });

  test("push and status over TLS + auth; the password appears nowhere", async () => {
    const out = await lab.exec("node1", [
      NFLB,
      "cluster",
      "push",
      "-c",
      lab.configPath(1),
      "--signing-key",
      lab.pushKeyPath,
    ]);
    assert.equal(out.code, 0, out.stderr);
    const version = Number(/version (\d+)/.exec(out.stdout)?.[1]);
    const t0 = Date.now();
    while (Date.now() - t0 < 5000 && !lab.nodeIndexes.every((i) => lab.configVersion(i) === version))
      await sleep(50);
    for (const i of lab.nodeIndexes) assert.equal(lab.configVersion(i), version, `node${i}`);
    const status = await lab.run("node2", [NFLB, "cluster", "status", "-c", lab.configPath(2)]);
    assert.match(status, /2 member\(s\), 16 buckets/);
    const api = await lab.nflb(1, ["status", "--json", "-c", lab.configPath(1)]);
    assert.match(api, /"buckets_owned": 8/);
    for (const text of [
      status,
      api,
      out.stdout,
      out.stderr,
      ...lab.nodeIndexes.map((i) => lab.agent(i)?.stdout() ?? ""),
    ])
      assert.ok(!text.includes(lab.etcdPassword), "the etcd password was printed");
  });
});
