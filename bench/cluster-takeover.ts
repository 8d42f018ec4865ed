// Takeover time after kill -9 + unplugging a node, over N trials, in the cluster lab (needs root).
//   node --import tsx bench/cluster-takeover.ts [--trials 10] [--nodes 3] [--lease 2s]
// Per trial: 60 sources connect every ~100 ms (1 s client timeout); the takeover time is from the
// kill until every source of the dead node is answered again; "sources with an error" counts the
// sources (of any node) that saw at least one failed connection during the trial.
import { parseArgs } from "node:util";
import { CLUSTER_LAB, ClusterLab } from "../src/lab/cluster-lab.ts";

const { values } = parseArgs({
  options: {
    trials: { type: "string", default: "10" },
    nodes: { type: "string", default: "3" },
    lease: { type: "string", default: "2s" },
  },
});
const trials = Math.min(50, Number(values.trials));
const lab = new ClusterLab({ nodes: Number(values.nodes), lease: values.lease });
const leaseMs = Number(/^(\d+)/.exec(values.lease ?? "2")?.[1]) * (values.lease?.endsWith("ms") ? 1 : 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (sources: string[], timeoutMs: number) =>
  lab.runClient({
    from: "client",
    dst: CLUSTER_LAB.vip,
    port: CLUSTER_LAB.port,
    sources,
    count: sources.length,
    parallel: 30,
    timeoutMs,
    deadlineMs: 20_000,
  });

const results: { ms: number; victimSources: number; errored: number; doubles: number }[] = [];
try {
  await lab.build();
  for (const i of lab.nodeIndexes) await lab.startAgent(i);
  await lab.startServers();
  for (let t = 0; t < trials; t++) {
    const victim = lab.nodeIndexes[t % lab.nodeIndexes.length] ?? 1;
    await sleep(1500);
    const base = await round(lab.sources, 2000);
    const mine = Object.entries(base.bySource)
      .filter(([, seen]) => Object.keys(seen).some((l) => l.startsWith(`node${victim} `)))
      .map(([s]) => s);
    await lab.resetRouterLog();
    const errored = new Set<string>();
    const t0 = Date.now();
    await lab.killAgent(victim);
    await lab.cutPort(victim);
    let took = -1;
    while (Date.now() - t0 < leaseMs + 10_000) {
      const r = await round(lab.sources, 1000);
      for (const [s, seen] of Object.entries(r.bySource)) if (Object.keys(seen).length === 0) errored.add(s);
      for (const s of lab.sources) if (!(s in r.bySource)) errored.add(s);
      if (mine.every((s) => s in r.bySource)) {
        took = Date.now() - t0;
        break;
      }
      await sleep(50);
    }
    const doubles = (await lab.doubleAnswers()).length;
    results.push({ ms: took, victimSources: mine.length, errored: errored.size, doubles });
    process.stderr.write(
      `trial ${t + 1}: node${victim} ${took} ms, ${mine.length} of its sources, ${errored.size} sources saw an error, ${doubles} double answers\n`,
    );
    await lab.restorePort(victim);
    await lab.startAgent(victim);
  }
} finally {
  await lab.destroy();
}
const ms = results.map((r) => r.ms).sort((a, b) => a - b);
const median =
  ms.length % 2 ? ms[(ms.length - 1) / 2] : ((ms[ms.length / 2 - 1] ?? 0) + (ms[ms.length / 2] ?? 0)) / 2;
process.stdout.write(
  JSON.stringify({
    trials,
    nodes: lab.options.nodes,
    lease: values.lease,
    takeover_ms: { median, max: ms[ms.length - 1], all: ms },
    sources_with_error: results.map((r) => r.errored),
    victim_sources: results.map((r) => r.victimSources),
    double_answers: results.reduce((a, r) => a + r.doubles, 0),
  }) + "\n",
);
