// The DNS forwarder behind `rules[].domains` (src/dns): queries per second and latency through it
// against asking the upstream (dnsmasq, in the same namespace) directly, in one run, interleaved;
// answers that put a new address into a rule's set (held until nft has it) and answers for names
// no rule lists; then memory with 100,000 domain-set entries.
//
//   node --import tsx bench/dns-forwarder.ts [--rounds 3] [--count 20000] [--window 32]
//
// Needs root: everything runs in one throw-away namespace (nlXXXX-dns) on loopback addresses
// (203.0.113.53 dnsmasq, 198.18.0.1 the forwarder); nft writes go to that namespace's own table.
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { withBenchNet } from "./lib/bench-net.ts";
import { dateLine, loadLine, machineLine, report, requireRoot } from "./lib/report.ts";
import { markdownTable, summarize } from "./lib/stats.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    count: { type: "string", default: "20000" },
    window: { type: "string", default: "32" },
  },
  strict: true,
});
const ROUNDS = Number(values.rounds);
const COUNT = Number(values.count);
const WINDOW = Number(values.window);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 20) throw new Error("--rounds must be 1..20");
if (!Number.isInteger(COUNT) || COUNT < 100 || COUNT > 30_000) throw new Error("--count must be 100..30000");
if (!Number.isInteger(WINDOW) || WINDOW < 1 || WINDOW > 256) throw new Error("--window must be 1..256");
requireRoot("bench/dns-forwarder.ts");

const UPSTREAM = "203.0.113.53";
const FORWARDER = "198.18.0.1";
const ENTRIES = 100_000;
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const tsx = (file: string, args: string[]) => [process.execPath, "--import", "tsx", file, ...args];

interface Load {
  qps: number;
  p50: number;
  p99: number;
  max: number;
  answers: number;
  withAddress: number;
  timeouts: number;
}

const { say, print } = report();

await withBenchNet(async (net) => {
  await net.addNs("dns");
  await net.exec("dns", ["ip", "link", "set", "lo", "up"]);
  for (const a of [UPSTREAM, FORWARDER]) await net.exec("dns", ["ip", "addr", "add", `${a}/32`, "dev", "lo"]);
  const dir = await net.tempDir();
  // n0 … n119999.bench.example → 198.18.0.0 + n: a distinct address per name.
  const hosts: string[] = [];
  for (let n = 0; n < 120_000; n++)
    hosts.push(`198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255} n${n}.bench.example`);
  await writeFile(join(dir, "hosts"), hosts.join("\n") + "\n", { mode: 0o644 });
  // dnsmasq reads the file after dropping root.
  await chmod(dir, 0o755);
  const dnsmasq = net.spawn("dns", [
    "dnsmasq",
    "--keep-in-foreground",
    "--no-resolv",
    "--no-hosts",
    `--addn-hosts=${join(dir, "hosts")}`,
    "--address=/other.example/203.0.113.9",
    `--listen-address=${UPSTREAM}`,
    "--bind-interfaces",
    "--port=53",
    "--local-ttl=3600",
    "--cache-size=0",
    `--pid-file=${join(dir, "dnsmasq.pid")}`,
    "--log-facility=-",
  ]);
  const fwd = net.spawn("dns", [
    process.execPath,
    "--expose-gc",
    "--import",
    "tsx",
    here("./lib/dns-forwarder-child.ts"),
    `${FORWARDER}:53`,
    UPSTREAM,
  ]);
  await fwd.waitForLine(/"ready":true/, 30_000);
  for (let i = 0; i < 100 && !dnsmasq.stderr().includes("read "); i++)
    await new Promise((r) => setTimeout(r, 100));

  const load = async (
    server: string,
    name: string,
    count: number,
    from: number,
    mod = 0,
    window = WINDOW,
  ): Promise<Load> => {
    const argv = tsx(here("./lib/dns-load.ts"), [
      server,
      "53",
      name,
      String(count),
      String(window),
      String(from),
      String(mod),
    ]);
    const r = await net.exec("dns", argv, { timeoutMs: 900_000 });
    if (r.code !== 0) throw new Error(`dns-load: ${r.stderr}`);
    const l = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}") as Load;
    if (l.withAddress < l.answers)
      throw new Error(`${name}: ${l.answers - l.withAddress} answers without an address`);
    return l;
  };
  const mem = async (): Promise<{ rss: number; heapUsed: number; entries: number }> => {
    const before = fwd.stdout().length;
    process.kill(fwd.pid, "SIGUSR2");
    for (let i = 0; i < 100; i++) {
      const tail = fwd.stdout().slice(before);
      const m = /\{"rss".*\}/.exec(tail);
      if (m) return JSON.parse(m[0]) as { rss: number; heapUsed: number; entries: number };
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("no memory report");
  };

  say("### DNS forwarder: overhead and queries/s against the upstream directly");
  say();
  say(`${dateLine()}, ${await machineLine()}; ${loadLine()} at start.`);
  say(`\`node --import tsx bench/dns-forwarder.ts --rounds ${ROUNDS} --count ${COUNT} --window ${WINDOW}\``);
  say();

  // Warm up every path once (JIT, dnsmasq's hosts read).
  await load(UPSTREAM, "w#.other.example", 2000, 0);
  await load(FORWARDER, "w#.other.example", 2000, 0);
  const mem0 = await mem();

  const cases = {
    direct: [] as Load[],
    "forwarder, no rule": [] as Load[],
    "forwarder, rule, address known (refresh path)": [] as Load[],
    "forwarder, rule, new address (held for nft)": [] as Load[],
  };
  let next = 0;
  // A set of 1,000 names put into the set once, then asked again and again.
  await load(FORWARDER, "n#.bench.example", 1000, 110_000);
  for (let r = 0; r < ROUNDS; r++) {
    cases.direct.push(await load(UPSTREAM, `r${r}x#.other.example`, COUNT, 0));
    cases["forwarder, no rule"].push(await load(FORWARDER, `r${r}y#.other.example`, COUNT, 0));
    cases["forwarder, rule, address known (refresh path)"].push(
      await load(FORWARDER, "n#.bench.example", COUNT, 110_000, 1000),
    );
    cases["forwarder, rule, new address (held for nft)"].push(
      await load(FORWARDER, "n#.bench.example", COUNT, next),
    );
    next += COUNT;
  }
  const base = summarize(cases.direct.map((c) => c.qps)).median;
  const baseP50 = summarize(cases.direct.map((c) => c.p50)).median;
  const rows = Object.entries(cases).map(([k, v]) => {
    const q = summarize(v.map((c) => c.qps)).median;
    const p50 = summarize(v.map((c) => c.p50)).median;
    const p99 = summarize(v.map((c) => c.p99)).median;
    return [
      k,
      q.toFixed(0),
      (q / base).toFixed(2),
      p50.toFixed(3),
      (p50 - baseP50).toFixed(3),
      p99.toFixed(3),
      String(v.reduce((s, c) => s + c.timeouts, 0)),
    ];
  });
  say(
    markdownTable(
      ["path", "queries/s (median)", "× direct", "p50 ms", "p50 − direct ms", "p99 ms", "timeouts"],
      rows,
    ),
  );
  say();
  say(
    `${COUNT} queries per case and round, ${WINDOW} in flight, ${ROUNDS} rounds interleaved; medians over the rounds.`,
  );
  say();

  // Fill the rule's table (and the kernel's set) to 100,000 entries.
  // Many in flight, so each nft transaction carries many new addresses.
  if (next < ENTRIES) await load(FORWARDER, "n#.bench.example", ENTRIES - next, next, 0, 256);
  const mem1 = await mem();
  const set = await net.exec("dns", ["nft", "-j", "list", "set", "inet", "nflb", "dom_bench_4"], {
    timeoutMs: 120_000,
  });
  const inKernel = (set.stdout.match(/"val"/g) ?? []).length;
  const MiB = (b: number) => (b / 2 ** 20).toFixed(1);
  say("### Memory with 100,000 domain-set entries");
  say();
  say(
    markdownTable(
      ["", "entries (daemon)", "elements (kernel set)", "RSS MiB", "heap used MiB"],
      [
        ["before", String(mem0.entries), "0", MiB(mem0.rss), MiB(mem0.heapUsed)],
        ["after", String(mem1.entries), String(inKernel), MiB(mem1.rss), MiB(mem1.heapUsed)],
        [
          "per entry",
          "",
          "",
          `${((mem1.rss - mem0.rss) / Math.max(1, mem1.entries - mem0.entries)).toFixed(0)} B`,
          `${((mem1.heapUsed - mem0.heapUsed) / Math.max(1, mem1.entries - mem0.entries)).toFixed(0)} B`,
        ],
      ],
    ),
  );
  say();
  say(`${loadLine()} at end.`);
  await fwd.stop(2000);
  await dnsmasq.stop(2000);
});
print();
