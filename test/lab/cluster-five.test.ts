// The five-node variant of "What it must show" 1 and 2. Needs root; skipped otherwise.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { ClusterLab } from "../../src/lab/cluster-lab.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("cluster of five nodes", { skip, timeout: 170_000 }, () => {
  const lab = new ClusterLab({ nodes: 5 });
  const round = (sources: readonly string[], timeoutMs = 2000, count = sources.length) =>
    lab.vipRound(sources, timeoutMs, count);

  before(
    async () => {
      await lab.build();
      for (const i of lab.nodeIndexes) await lab.startAgent(i);
      await lab.startServers();
    },
    { timeout: 120_000 },
  );
  after(() => lab.destroy(), { timeout: 30_000 });

  let home = new Map<string, string>();

  test(
    "one answer per connection, one node per source, every node serves, buckets within one",
    { timeout: 40_000 },
    async (t) => {
      const t0 = Date.now();
      let sizes: number[] = [];
      while (Date.now() - t0 < 15_000) {
        sizes = await Promise.all(lab.nodeIndexes.map(async (i) => (await lab.kernelBuckets(i)).length));
        if (
          sizes.reduce((a, b) => a + b, 0) === lab.options.buckets &&
          Math.max(...sizes) - Math.min(...sizes) <= 1
        )
          break;
        await sleep(200);
      }
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `buckets per node ${sizes.join("/")}`);
      await lab.clientCounters(true);
      await lab.resetRouterLog();
      const r = await round(lab.sources, 2000, lab.sources.length * 2);
      assert.equal(r.ok, lab.sources.length * 2, JSON.stringify(r.errors));
      const c = await lab.clientCounters();
      assert.equal(c.synack, r.ok, "one SYN-ACK per connection: no second node answered");
      assert.deepEqual(await lab.doubleAnswers(), []);
      for (const [src, seen] of Object.entries(r.bySource)) {
        const nodes = new Set(Object.keys(seen).map((l) => l.split(" ")[0] ?? ""));
        assert.equal(nodes.size, 1, `${src}: ${[...nodes]}`);
        home.set(src, [...nodes][0] ?? "");
      }
      // As in the three-node test: no open connection reset; a late reset (after both sides
      // closed) only from the node serving that source.
      assert.equal(c.rst, 0, `resets reached ${c.rst} open connections`);
      const resets = await lab.resetSenders();
      if (resets.length) t.diagnostic(`late resets: ${c.rstLate}: ${JSON.stringify(resets)}`);
      const stray = resets.filter((x) => home.get(x.source) !== x.node);
      assert.deepEqual(stray, [], "a node reset a connection it does not hold");
      home = new Map(home);
      for (const i of lab.nodeIndexes)
        assert.ok([...home.values()].includes(`node${i}`), `node${i} serves nobody`);
    },
  );

  test(
    "kill -9 and unplug one: its sources are served by the four others within lease + 3 s",
    { timeout: 40_000 },
    async () => {
      const victim = [...home].filter(([, n]) => n === "node4").map(([s]) => s);
      assert.ok(victim.length > 0);
      await lab.clientCounters(true);
      await lab.resetRouterLog();
      const t0 = Date.now();
      await lab.killAgent(4);
      await lab.cutPort(4);
      let took: number | null = null;
      while (Date.now() - t0 < 5000) {
        const r = await round(victim, 1000);
        if (r.ok === victim.length) {
          took = Date.now() - t0;
          break;
        }
        await sleep(100);
      }
      assert.ok(took !== null, "not taken over within lease + 3 s");
      assert.deepEqual(await lab.doubleAnswers(), []);
      const r = await round(lab.sources);
      assert.equal(r.ok, lab.sources.length);
      for (const [src, seen] of Object.entries(r.bySource)) {
        const node = Object.keys(seen)[0]?.split(" ")[0];
        assert.notEqual(node, "node4");
        if (!victim.includes(src))
          assert.equal(node, home.get(src), `${src} moved although its node survived`);
      }
      const c = await lab.clientCounters();
      assert.equal(c.rst, 0, `resets reached ${c.rst} open connections`);
    },
  );
});
