// What both packet-path benches (uplinks-packet-path.ts, packet-path-pieces.ts) share once their
// routers are built: the connection server and client, the per-round ratio statistics, and the
// uplink traffic check.
import type { BenchNet } from "./bench-net.ts";
import type { ConnSample } from "./conn-client.ts";
import { tsNode } from "./paths.ts";
import { summarize } from "./stats.ts";
import type { BenchRouter } from "./uplink-topology.ts";

export const CONN_PORT = 8080;

export interface ClientOptions {
  threads: number;
  parallel: number;
  /**
   * CPU list for `taskset -c` (e.g. "0" for the client, "1" for the server), or undefined: the
   * scheduler places them. The router's forwarding runs in the softirq of the CPU that sent the
   * packet, so pinning fixes which core does whose work.
   */
  cpus?: string | undefined;
}

const pinned = (cpus: string | undefined, argv: string[]) =>
  cpus === undefined ? argv : ["taskset", "-c", cpus, ...argv];

/** The 1-byte server in the upstream namespace; resolves once it listens. */
export async function startConnServer(net: BenchNet, cpus?: string): Promise<number> {
  const server = net.spawn(
    "upstream",
    pinned(cpus, tsNode("bench/lib/conn-server.ts", ["--listen", `0.0.0.0:${CONN_PORT}`])),
  );
  await server.waitForLine(/"ready":true/, 60_000);
  return server.pid;
}

/**
 * One client process in the client namespace: `rounds` rounds of `count` connections to each
 * router's server in turn (odd rounds in reverse). Returns the samples and the client's pid.
 */
export async function runConnClient(
  net: BenchNet,
  routers: readonly BenchRouter[],
  count: number,
  rounds: number,
  o: ClientOptions,
): Promise<{ samples: ConnSample[]; pid: number }> {
  const argv = tsNode("bench/lib/conn-client.ts", [
    ...routers.flatMap((r) => ["--target", `${r.server}:${CONN_PORT}`]),
    ...["--count", String(count), "--rounds", String(rounds)],
    ...["--threads", String(o.threads), "--parallel", String(o.parallel), "--deadline-ms", "1800000"],
  ]);
  const out = await net.run("client", pinned(o.cpus, argv), { timeoutMs: 2_400_000 });
  return JSON.parse(out.trim().split("\n").pop() ?? "{}") as { samples: ConnSample[]; pid: number };
}

export interface RatioSummary {
  n: number;
  median: number;
  /** Interquartile range of the per-round ratios. */
  q1: number;
  q3: number;
  /** Distribution-free 95 % confidence interval of the median (binomial order statistics). */
  lo: number;
  hi: number;
  min: number;
  max: number;
}

/** The median of per-round ratios with its spread and a 95 % confidence interval. */
export function ratioSummary(ratios: readonly number[]): RatioSummary {
  const s = ratios.filter((r) => Number.isFinite(r)).sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) throw new Error("ratioSummary: no finite ratios");
  const at = (k: number) => s[Math.min(n - 1, Math.max(0, k))] as number;
  const quantile = (p: number) => {
    const x = (n - 1) * p;
    const i = Math.floor(x);
    return at(i) + (at(i + 1) - at(i)) * (x - i);
  };
  // Ranks n/2 ∓ 1.96·√n/2 (normal approximation of Binomial(n, ½)), 1-based.
  const half = 0.98 * Math.sqrt(n);
  return {
    n,
    median: summarize(s).median,
    q1: quantile(0.25),
    q3: quantile(0.75),
    lo: at(Math.floor(n / 2 - half) - 1),
    hi: at(Math.ceil(n / 2 + half) - 1),
    min: at(0),
    max: at(n - 1),
  };
}

/** `median [95 % CI lo–hi] (IQR q1–q3)`, as the tables print a ratio. */
export function fmtRatio(r: RatioSummary): string {
  const f = (x: number) => x.toFixed(3);
  return `${f(r.median)} [${f(r.lo)}–${f(r.hi)}] (${f(r.q1)}–${f(r.q3)})`;
}

/** Per round: target a's rate over target b's in the same round. */
export function pairedRatios(samples: readonly ConnSample[], a: number, b: number): number[] {
  const byRound = new Map<number, number>();
  for (const s of samples) if (s.target === b) byRound.set(s.round, s.perSecond);
  return samples.filter((s) => s.target === a).map((s) => s.perSecond / (byRound.get(s.round) ?? NaN));
}

/** tx packets of each uplink of each router. */
export async function txPackets(
  net: BenchNet,
  routers: readonly BenchRouter[],
): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const r of routers) {
    const links = JSON.parse(await net.run(r.role, ["ip", "-j", "-s", "link", "show"])) as {
      ifname: string;
      stats64?: { tx?: { packets?: number } };
    }[];
    const tx = new Map(links.map((l) => [l.ifname, l.stats64?.tx?.packets ?? 0]));
    out.set(
      r.role,
      r.uplinks.map((u) => tx.get(u.iface) ?? 0),
    );
  }
  return out;
}

/** Per router: how many of its first n uplinks carried at least a third of an even share. */
export function linksUsed(
  before: Map<string, number[]>,
  after: Map<string, number[]>,
  role: string,
  n: number,
): number {
  const b = before.get(role) ?? [];
  const deltas = (after.get(role) ?? []).slice(0, n).map((v, i) => v - (b[i] ?? 0));
  const total = deltas.reduce((x, y) => x + y, 0);
  return deltas.filter((d) => d > 0 && d >= total / n / 3).length;
}

/** Integer option in [min, max], or an error naming the flag. */
export function intOption(s: string | undefined, name: string, min: number, max: number): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be ${min}..${max}`);
  return n;
}

/**
 * A statistic over rounds with a 95 % bootstrap interval: the rounds drawn again with replacement,
 * 2,000 times (a fixed seed, so a rerun prints the same interval). `stat` gets the round indices.
 */
export function bootstrap(
  n: number,
  stat: (idx: readonly number[]) => number,
): { value: number; lo: number; hi: number } {
  const all = Array.from({ length: n }, (_, i) => i);
  let seed = 0x6e666c62;
  const rand = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const draws: number[] = [];
  for (let b = 0; b < 2000; b++) draws.push(stat(all.map(() => Math.floor(rand() * n))));
  draws.sort((a, b) => a - b);
  return { value: stat(all), lo: draws[49] as number, hi: draws[1949] as number };
}

/** Σ num / Σ den over rounds, with a 95 % bootstrap interval. */
export function ratioOfTotals(
  num: readonly number[],
  den: readonly number[],
): { ratio: number; lo: number; hi: number } {
  const sum = (xs: readonly number[], idx: readonly number[]) => idx.reduce((a, i) => a + (xs[i] ?? 0), 0);
  const r = bootstrap(Math.min(num.length, den.length), (idx) => sum(num, idx) / sum(den, idx));
  return { ratio: r.value, lo: r.lo, hi: r.hi };
}
