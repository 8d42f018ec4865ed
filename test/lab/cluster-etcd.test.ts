// Cluster vs its coordinator: etcd stopped for 30 s, and configs pushed through it.
// Real namespaces, a real etcd, real traffic. Needs root; skipped otherwise.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { ClusterLab } from "../../src/lab/cluster-lab.ts";
import type { ClientSummary } from "../../src/lab/traffic-summary.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;
const NFLB = fileURLToPath(new URL("../../bin/nflb", import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function homes(r: ClientSummary): Map<string, string> {
  return new Map(
    Object.entries(r.bySource).map(([s, seen]) => [
      s,
      Object.keys(seen)
        .map((l) => l.split(" ")[0])
        .join(","),
    ]),
  );
}

describe("cluster and etcd", { skip, timeout: 170_000 }, () => {
  const lab = new ClusterLab({ nodes: 3 });
  const round = () => lab.vipRound();
  const kernel = async () => Promise.all(lab.nodeIndexes.map((i) => lab.kernelBuckets(i)));

  before(
    async () => {
      await lab.build();
      for (const i of lab.nodeIndexes) await lab.startAgent(i);
      await lab.startServers();
    },
    { timeout: 90_000 },
  );
  after(() => lab.destroy(), { timeout: 30_000 });

  test(
    "5: etcd stopped for 30 s: every source still served; afterwards no bucket moves",
    { timeout: 80_000 },
    async () => {
      await sleep(1000);
      const tb = Date.now();
      const base = await round();
      const baseMs = Date.now() - tb;
      assert.equal(base.ok, lab.sources.length);
      const home = homes(base);
      const before5 = await kernel();
      await lab.stopEtcd();
      const t0 = Date.now();
      let rounds = 0;
      const took: number[] = [];
      while (Date.now() - t0 < 30_000) {
        await sleep(2500);
        const t = Date.now();
        const r = await round();
        took.push(Date.now() - t);
        rounds++;
        assert.equal(
          r.ok,
          lab.sources.length,
          `${Math.round((Date.now() - t0) / 1000)} s into the outage: ${JSON.stringify(r.errors)}`,
        );
        assert.deepEqual(homes(r), home, "a source changed node during the outage");
      }
      for (const i of lab.nodeIndexes)
        assert.equal(lab.snapshot(i)?.mode, "outage", `node${i} is not in outage mode`);
      // Rounds spread over the whole outage; a round alone takes 1-4 s on a loaded 2-core machine.
      assert.ok(
        rounds >= 5,
        `only ${rounds} rounds in 30 s (ms each: ${took.join(", ")}; before the outage ${baseMs})`,
      );
      await lab.startEtcd();
      // Let every member reconnect, renew and reconcile a few times.
      const t1 = Date.now();
      while (Date.now() - t1 < 10_000 && !lab.nodeIndexes.every((i) => lab.snapshot(i)?.mode === "normal"))
        await sleep(200);
      await sleep(3000);
      assert.deepEqual(await kernel(), before5, "buckets moved although membership did not change");
      const after5 = await round();
      assert.deepEqual(homes(after5), home);
      for (const i of lab.nodeIndexes) assert.equal(lab.snapshot(i)?.etcd, true);
    },
  );

  test(
    "6: cluster push reaches every member within 2 s; unsigned, foreign-key and broken records are refused by all",
    { timeout: 60_000 },
    async () => {
      await lab.startEtcd(); // back already, unless test 5 failed half-way
      const versionOf = (i: number) => lab.configVersion(i);
      const hookMark = `${lab.configPath(1)}.hook-ran`;
      // A node's whole file: only its shared part is pushed (the hook and the API stay behind).
      const changed = await lab.writeFile(
        "changed.yaml",
        lab.configText(1, `api:\n  listen: 127.0.0.1:9119\non_change: [/usr/bin/touch, ${hookMark}]\n`),
      );
      const out = await lab.exec("node1", [
        NFLB,
        "cluster",
        "push",
        "-c",
        changed,
        "--signing-key",
        lab.pushKeyPath,
      ]);
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stderr, /not pushed \(each node keeps its own\): .*on_change/);
      const t0 = Date.now();
      const version = Number(/version (\d+)/.exec(out.stdout)?.[1]);
      assert.ok(version >= 1, out.stdout);
      while (Date.now() - t0 < 5000 && !lab.nodeIndexes.every((i) => versionOf(i) === version))
        await sleep(50);
      const took = Date.now() - t0;
      assert.ok(took <= 2000, `members ran v${version} only after ${took} ms`);

      const status = JSON.parse(
        await lab.run("node2", [NFLB, "cluster", "status", "--json", "-c", lab.configPath(2)]),
      ) as {
        members: { node: string; config_version: number | null; buckets: number }[];
      };
      assert.deepEqual(
        status.members.map((m) => [m.node, m.config_version]),
        lab.nodeIndexes.map((i) => [`node${i}`, version]),
      );

      // `push` itself refuses a config that does not validate, and one without the signing key.
      const broken = await lab.writeFile("broken.yaml", lab.configText(1, "uplinks: {}\n"));
      const refused = await lab.exec("node1", [
        NFLB,
        "cluster",
        "push",
        "-c",
        broken,
        "--signing-key",
        lab.pushKeyPath,
      ]);
      assert.equal(refused.code, 2, `an invalid config: exit 2\n${refused.stderr}`);
      const unsignedPush = await lab.exec("node1", [NFLB, "cluster", "push", "-c", changed]);
      assert.notEqual(unsignedPush.code, 0);

      // Records written behind push's back (an old client, a hand edit, anyone with etcd access):
      // every member refuses them and keeps serving as before.
      const kernelBefore = await kernel();
      const shared = (extra = "") =>
        `version: 1\ncluster:\n  name: lab\n  vip: 192.0.2.2\n  buckets: ${lab.options.buckets}\n  lease: ${lab.options.lease}\n${extra}`;
      const records = [
        // unsigned
        JSON.stringify({ version: version + 1, sha256: "0", text: shared(), pushed_at: "" }),
        // a hook, signed with the right key: still never taken from etcd
        lab.signedRecord(version + 2, shared(`on_change: [/usr/bin/touch, ${hookMark}]\n`)),
        // a typo, signed
        lab.signedRecord(version + 3, shared("cluster_typo: true\n")),
      ];
      for (const [n, rec] of records.entries()) {
        const v = version + 1 + n;
        await lab.etcdctl(["put", "/nflb/cluster/lab/config", rec]);
        const t1 = Date.now();
        const refusedBy = (i: number) => lab.refusedConfig(i, v);
        while (Date.now() - t1 < 5000 && !lab.nodeIndexes.every(refusedBy)) await sleep(50);
        for (const i of lab.nodeIndexes) {
          assert.ok(refusedBy(i), `node${i} did not refuse v${v}`);
          assert.equal(versionOf(i), version, `node${i} left v${version}`);
        }
      }
      const reasons = lab.refusalReasons(1);
      assert.match(reasons.get(version + 1) ?? "", /unsigned/);
      assert.match(reasons.get(version + 2) ?? "", /not shared through etcd: on_change/);
      assert.match(reasons.get(version + 3) ?? "", /not shared through etcd: cluster_typo/);
      await sleep(500);
      assert.equal(existsSync(hookMark), false, "a hook from etcd ran");
      assert.deepEqual(await kernel(), kernelBefore, "a refused config changed the data plane");
      const r = await round();
      assert.equal(r.ok, lab.sources.length);
    },
  );
});
