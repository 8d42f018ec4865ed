// Runs inside the balancer's namespace for bench/services-flow-counts.ts: the daemon's
// ConntrackFlowMonitor follows the flows a sender creates, then the costs are measured in this
// one process and printed as one JSON line.
//
//   flow-counts-child.ts SERVICE_KEY VIP PORT COUNT
import { exec } from "../../src/system/exec.ts";
import { ConntrackFlowMonitor } from "../../src/health/flow-monitor.ts";
import { FlowTable } from "../../src/health/flow-table.ts";
import { spawnLines } from "../../src/health/probe-process.ts";
import { FLOW_LIST_ARGV, parseFlowLine } from "../../src/system/conntrack-events.ts";

const [service = "", vip = "", port = "", countArg = ""] = process.argv.slice(2);
const COUNT = Number(countArg);
if (!service || !vip || !Number.isInteger(COUNT) || COUNT < 1 || COUNT > 200_000)
  throw new Error("usage: flow-counts-child.ts SERVICE_KEY VIP PORT COUNT (≤ 200000)");

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const total = (m: ReadonlyMap<string, number> | null) =>
  [...(m ?? new Map<string, number>()).values()].reduce((a, b) => a + b, 0);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

const lost: string[] = [];
const m = new ConntrackFlowMonitor({ log: (s) => lost.push(s) });
m.start();
for (let i = 0; m.open(service) === null; i++) {
  if (i > 300) throw new Error("the first listing never came in");
  await sleep(50);
}
const rss0 = process.memoryUsage().rss;
out({ ready: true });

// Ingest: every NEW event of the sender's flows, until the count is complete (or 120 s).
const cpu0 = cpuMs();
const t0 = performance.now();
let seen = 0;
for (let i = 0; i < 1200 && (seen = total(m.open(service))) < COUNT; i++) await sleep(100);
const ingest = { ms: performance.now() - t0, cpuMs: cpuMs() - cpu0, counted: seen };
const rss1 = process.memoryUsage().rss;

// One read of a service's counts, as status, metrics and least-conn do it: the best of 5 batches
// (a shared CPU's pauses are not the reads' cost).
const READS = 2000;
let sink = 0;
let readUs = Infinity;
for (let b = 0; b < 5; b++) {
  const r0 = performance.now();
  for (let i = 0; i < READS; i++) sink += total(m.open(service));
  readUs = Math.min(readUs, ((performance.now() - r0) * 1000) / READS);
}

// A full listing into a fresh table: what a resync costs (at start, after ENOBUFS, every 10 min).
const listings: { ms: number; cpuMs: number; flows: number }[] = [];
for (let k = 0; k < 3; k++) {
  const t = new FlowTable();
  const c = cpuMs();
  const s = performance.now();
  const p = spawnLines(FLOW_LIST_ARGV, (line) => {
    const e = parseFlowLine(line);
    if (e) t.apply(e, 0);
  });
  await p.exited;
  listings.push({ ms: performance.now() - s, cpuMs: cpuMs() - c, flows: t.size });
}

// What each refresh cost before: `conntrack -L` filtered by the VIP and port, parsed whole.
const before: { ms: number; cpuMs: number; flows: number }[] = [];
for (let k = 0; k < 3; k++) {
  const c = cpuMs();
  const s = performance.now();
  const r = await exec(["conntrack", "-L", "-p", "udp", "--orig-dst", vip, "--orig-port-dst", port], {
    timeoutMs: 60_000,
  });
  let flows = 0;
  for (const line of r.stdout.split("\n")) if (parseFlowLine(`${line} id=1`)) flows++;
  before.push({ ms: performance.now() - s, cpuMs: cpuMs() - c, flows });
}

out({
  result: {
    tracked: m.size,
    ingest,
    readUs,
    sink,
    rssMiB: { before: rss0 / 2 ** 20, after: rss1 / 2 ** 20 },
    listing: {
      ms: median(listings.map((x) => x.ms)),
      cpuMs: median(listings.map((x) => x.cpuMs)),
      flows: listings[0]?.flows,
    },
    perRequestList: {
      ms: median(before.map((x) => x.ms)),
      cpuMs: median(before.map((x) => x.cpuMs)),
      flows: before[0]?.flows,
    },
    lost,
  },
});
await m.stop();
process.exit(0);
