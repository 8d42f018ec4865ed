// New TCP connections per second through the balancer (DNAT to 2, 100 or 1,000 backends) against
// plain forwarding to one server, measured in the same run, rounds interleaved.
//
//   node --import tsx bench/services-conns.ts [--rounds N] [--count N]
//
//   client 198.18.0.2 ── lan0 lb (VIP 203.0.113.10 on lo) srv0 ── srv 198.51.100.11/.12,
//                                                                   backends 198.18.4.0/22
//
// One server socket (0.0.0.0:80) answers every path, so the paths differ only in the balancer.
// Needs root. The server (bench/lib/conn-server.ts) writes one byte and closes; the client
// (bench/lib/conn-client.ts) opens COUNT connections per target and round from 2 threads, 32 in
// flight each, targets interleaved (odd rounds reversed). Prints a markdown section.
import { parseArgs } from "node:util";
import { parseConfig } from "../src/config/load.ts";
import { allHealthy, desiredState } from "../src/plan/desired.ts";
import { withBenchNet, type BenchNet } from "./lib/bench-net.ts";
import type { ConnSample } from "./lib/conn-client.ts";
import { tsNode } from "./lib/paths.ts";
import { dateLine, loadLine, machineLine, report, requireRoot } from "./lib/report.ts";
import { markdownTable, summarize } from "./lib/stats.ts";

const { values } = parseArgs({
  options: { rounds: { type: "string", default: "3" }, count: { type: "string", default: "10000" } },
  strict: true,
});
const ROUNDS = Number(values.rounds);
const COUNT = Number(values.count);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 20) throw new Error("--rounds must be 1..20");
if (!Number.isInteger(COUNT) || COUNT < 100 || COUNT > 100_000)
  throw new Error("--count must be 100..100000");
requireRoot("bench/services-conns.ts");

const VIP = "203.0.113.10";
const S1 = "198.51.100.11";
const S2 = "198.51.100.12";
/** Backend i of the 100/1,000-backend services: its own address in 198.18.4.0/22. */
const backend = (i: number) => `198.18.${4 + (i >> 8)}.${i & 255}`;

const config = parseConfig(`version: 1
services:
  two:
    listen: ${VIP}:80
    backends:
      - { address: ${S1}:80 }
      - { address: ${S2}:80 }
  hundred:
    listen: ${VIP}:81
    backends:
${Array.from({ length: 100 }, (_, i) => `      - { address: ${backend(i)}:80 }`).join("\n")}
  thousand:
    listen: ${VIP}:82
    backends:
${Array.from({ length: 1000 }, (_, i) => `      - { address: ${backend(i)}:80 }`).join("\n")}
`);

const TARGETS = [
  { label: "plain forwarding to one server (nflb table loaded, lookup misses)", target: `${S1}:80` },
  { label: "VIP → 2 backends (round-robin DNAT)", target: `${VIP}:80` },
  { label: "VIP → 100 backends", target: `${VIP}:81` },
  { label: "VIP → 1,000 backends", target: `${VIP}:82` },
] as const;

async function build(net: BenchNet): Promise<void> {
  for (const r of ["client", "lb", "srv"]) await net.addNs(r);
  await net.ipBatchRoot([
    `link add name lan0 netns ${net.ns("lb")} type veth peer name eth0 netns ${net.ns("client")}`,
    `link add name srv0 netns ${net.ns("lb")} type veth peer name eth0 netns ${net.ns("srv")}`,
  ]);
  await net.ipBatch("lb", [
    `addr add ${VIP}/32 dev lo`,
    "addr add 198.18.0.1/24 dev lan0",
    "addr add 198.51.100.1/24 dev srv0",
    "link set lan0 up",
    "link set srv0 up",
    `route add 198.18.4.0/22 via ${S1}`,
  ]);
  await net.ipBatch("client", [
    "addr add 198.18.0.2/24 dev eth0",
    "link set eth0 up",
    "route add default via 198.18.0.1",
  ]);
  await net.ipBatch("srv", [
    `addr add ${S1}/24 dev eth0`,
    `addr add ${S2}/24 dev eth0`,
    ...Array.from({ length: 1000 }, (_, i) => `addr add ${backend(i)}/32 dev eth0`),
    "link set eth0 up",
    "route add default via 198.51.100.1",
  ]);
  await net.sysctl("lb", { "net.ipv4.ip_forward": 1 });
  // Many short connections from one client address: widen its port range, reuse TIME_WAIT ports.
  await net.sysctl("client", { "net.ipv4.ip_local_port_range": "1024 65000", "net.ipv4.tcp_tw_reuse": 1 });
  // The server closes first, so TIME_WAIT would pile up on its side and the client, reusing
  // source ports toward the same address:port run after run, would hit it; other cases use fresh
  // ports. Without TIME_WAIT every case sees the same fresh 4-tuples.
  await net.sysctl("srv", { "net.core.somaxconn": 4096, "net.ipv4.tcp_max_tw_buckets": 0 });
}

const { say, print } = report();

await withBenchNet(async (net) => {
  await build(net);
  const server = net.spawn("srv", tsNode("bench/lib/conn-server.ts", ["--listen", "0.0.0.0:80"]));
  await server.waitForLine(/"ready":true/, 30_000);
  const client = async (targets: readonly string[], rounds: number, count: number) => {
    const argv = tsNode("bench/lib/conn-client.ts", [
      ...targets.flatMap((t) => ["--target", t]),
      "--count",
      String(count),
      "--rounds",
      String(rounds),
      "--threads",
      "2",
      "--parallel",
      "32",
    ]);
    const raw = await net.run("client", argv, { timeoutMs: 900_000 });
    return (JSON.parse(raw.trim().split("\n").pop() ?? "{}") as { samples: ConnSample[] }).samples;
  };

  say("### New connections per second: balancer vs plain forwarding");
  say();
  say(`${dateLine()}; ${await machineLine()}; ${loadLine()} at start.`);
  say(
    `Client, balancer and server are namespaces on the same 2-core machine, so the absolute rates are the machine's, not the balancer's; the ratio to plain forwarding (same client run, targets interleaved, odd rounds reversed) is the point. ${COUNT} connections per target and round, ${ROUNDS} rounds after a warm-up round; connections/s min / median / max.`,
  );
  say();
  // Reference: the same plain path before any nflb table exists (no nat hooks at all).
  await client([`${S1}:80`], 1, 1000);
  const bare = await client([`${S1}:80`], ROUNDS, COUNT);
  const table = desiredState(config, allHealthy(config), { interfaces: new Map() }).nft;
  await net.run("lb", ["nft", "-f", "-"], { input: table });
  await client(
    TARGETS.map((t) => t.target),
    1,
    1000,
  );
  await net.run("lb", ["conntrack", "-F"]).catch(() => undefined);
  const samples = await client(
    TARGETS.map((t) => t.target),
    ROUNDS,
    COUNT,
  );
  const stat = (xs: ConnSample[]) => {
    const s = summarize(xs.map((x) => x.perSecond));
    return { s, failed: xs.reduce((n, x) => n + x.failed + x.notStarted, 0) };
  };
  const base = stat(samples.filter((x) => x.target === 0)).s.median;
  const row = (label: string, xs: ConnSample[]) => {
    const { s, failed } = stat(xs);
    return [
      label,
      `${s.min.toFixed(0)} / ${s.median.toFixed(0)} / ${s.max.toFixed(0)}`,
      (s.median / base).toFixed(2),
      String(failed),
    ];
  };
  say(
    markdownTable(
      ["path", "connections/s", "median ÷ plain", "failed"],
      TARGETS.map((t, i) =>
        row(
          t.label,
          samples.filter((x) => x.target === i),
        ),
      ),
    ),
  );
  say();
  const b = stat(bare);
  say(
    `Reference, separate client run before the table was loaded (no nat hooks at all): plain forwarding ${b.s.min.toFixed(0)} / ${b.s.median.toFixed(0)} / ${b.s.max.toFixed(0)} connections/s, ${b.failed} failed.`,
  );
  say();
  say(`${loadLine()} at end.`);
});
print();
