// CPU per connection from `perf record -a -e cpu-clock`, for the packet-path benches: only the
// samples of the bench's own processes (client, server, ksoftirqd, the idle task's softirqs)
// inside each measurement's time window count, so other work on a shared machine is left out and
// moves the figure far less than it moves the connection rate.
import { spawn, type ChildProcess } from "node:child_process";
import { exec } from "../../src/system/exec.ts";
import type { ConnSample } from "./conn-client.ts";
import { bootstrap, ratioOfTotals } from "./packet-path-run.ts";

export type Group = "nft" | "rules" | "fib" | "ct" | "nat" | "kernel" | "all";
export const GROUPS: Group[] = ["nft", "rules", "fib", "ct", "nat", "kernel", "all"];
export type Profile = Partial<Record<Group, number>>;

/** The idle loop's own functions: the idle task's samples there are no work (its softirqs are). */
const IDLE = /idle|safe_halt|mwait|poll_idle|hlt/;

export function groupOf(sym: string): Group | undefined {
  if (/^(nft_|__nft|nf_tables)/.test(sym)) return "nft";
  if (/^(fib_rule|fib4_rule|__fib_rule)/.test(sym)) return "rules";
  if (
    /^(fib_|__fib|ip_route|ip_mkroute|rt_|inet_addr_type|fib4_|__fib_validate|ip_rcv_finish_core)/.test(sym)
  )
    return "fib";
  if (/^(nf_nat|__nf_nat|nf_masq|inet_select_addr)/.test(sym)) return "nat";
  if (
    /^(nf_conntrack|__nf_conntrack|nf_ct_|ipv4_conntrack|nf_confirm|__nf_ct|tcp_in_window|nf_tcp)/.test(sym)
  )
    return "ct";
  return undefined;
}

export class CpuProfile {
  /**
   * The processes whose samples count: the client and the server (the router's forwarding runs
   * in softirq on their system calls), the idle task (softirq on an interrupt's exit) and
   * ksoftirqd (matched by name).
   */
  readonly ours = new Set<number>([0]);
  /** Samples per group, key `target:round`; `all` is every sample of ours, user space included. */
  readonly byRound = new Map<string, Profile>();
  /** Samples per kernel symbol of the groups, per target. */
  readonly symbols = new Map<number, Map<string, number>>();
  private proc: ChildProcess | undefined;
  private exited: Promise<unknown> | undefined;

  constructor(
    readonly hz: number,
    readonly file: string,
  ) {}

  start(): void {
    const argv = ["record", "-q", "-a", "-e", "cpu-clock", "-F", String(this.hz), "-k", "CLOCK_MONOTONIC"];
    const p = spawn("perf", [...argv, "-o", this.file], { stdio: "ignore" });
    this.exited = new Promise((r) => p.once("exit", r));
    this.proc = p;
  }

  async stop(): Promise<void> {
    if (this.proc?.pid) process.kill(this.proc.pid, "SIGINT");
    await this.exited;
  }

  /** Read the recording and attribute each sample of ours to the measurement whose window holds it. */
  async read(samples: readonly ConnSample[]): Promise<void> {
    const res = await exec(["perf", "script", "-i", this.file, "--ns", "-F", "comm,pid,time,ip,sym"], {
      timeoutMs: 600_000,
    });
    const windows = samples
      .map((s) => ({ t: s.target, round: s.round, a: BigInt(s.monoStart), b: BigInt(s.monoEnd) }))
      .sort((x, y) => (x.a < y.a ? -1 : 1));
    for (const line of res.stdout.split("\n")) {
      const m = /^\s*(.*?)\s+(\d+)\s+(\d+)\.(\d{9}):\s+([0-9a-f]+)\s+(\S+)/.exec(line);
      if (!m) continue;
      const [, comm, pid, sec, nsec, ip, sym] = m as unknown as string[];
      if (!this.ours.has(Number(pid)) && !(comm as string).startsWith("ksoftirqd")) continue;
      const t = BigInt(sec as string) * 1_000_000_000n + BigInt(nsec as string);
      let lo = 0;
      let hi = windows.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if ((windows[mid] as (typeof windows)[number]).a <= t) lo = mid;
        else hi = mid - 1;
      }
      const w = windows[lo];
      if (!w || t < w.a || t >= w.b) continue;
      const kernel = (ip as string).startsWith("ffff");
      if (kernel && IDLE.test(sym as string)) continue;
      const g = groupOf(sym as string);
      const key = `${w.t}:${w.round}`;
      const acc = this.byRound.get(key) ?? {};
      acc.all = (acc.all ?? 0) + 1;
      if (kernel) acc.kernel = (acc.kernel ?? 0) + 1;
      if (kernel && g) {
        acc[g] = (acc[g] ?? 0) + 1;
        const bySym = this.symbols.get(w.t) ?? new Map<string, number>();
        bySym.set(sym as string, (bySym.get(sym as string) ?? 0) + 1);
        this.symbols.set(w.t, bySym);
      }
      this.byRound.set(key, acc);
    }
  }

  /** One target's samples over all its rounds. */
  total(target: number): Profile {
    const acc: Profile = {};
    for (const [key, p] of this.byRound) {
      if (!key.startsWith(`${target}:`)) continue;
      for (const g of GROUPS) acc[g] = (acc[g] ?? 0) + (p[g] ?? 0);
    }
    return acc;
  }

  /** µs of CPU per connection in group g, over all of the target's rounds. */
  usPerConn(target: number, g: Group, ok: number): number {
    return ((this.total(target)[g] ?? 0) * 1e6) / this.hz / Math.max(1, ok);
  }

  /** Per round: reference's CPU per connection over target's (> 1: target is cheaper). */
  roundRatios(samples: readonly ConnSample[], target: number, reference: number, rounds: number): number[] {
    const perConn = (t: number, round: number) => {
      const s = samples.find((x) => x.target === t && x.round === round);
      return (this.byRound.get(`${t}:${round}`)?.all ?? NaN) / Math.max(1, s?.ok ?? 0);
    };
    return Array.from({ length: rounds }, (_, r) => perConn(reference, r) / perConn(target, r));
  }

  /**
   * Over all rounds: reference's CPU per connection over target's, with a 95 % bootstrap interval
   * (rounds paired), as `ratio [lo–hi]`.
   */
  totalRatio(samples: readonly ConnSample[], target: number, reference: number, rounds: number): string {
    const cpu = (t: number) =>
      Array.from({ length: rounds }, (_, r) => this.byRound.get(`${t}:${r}`)?.all ?? 0);
    const ok = (t: number) => samples.filter((x) => x.target === t).reduce((a, x) => a + x.ok, 0) || 1;
    // (Σ cpuRef / Σ okRef) / (Σ cpuT / Σ okT) = (Σ cpuRef / Σ cpuT) · (okT / okRef).
    const scale = ok(target) / ok(reference);
    const r = ratioOfTotals(cpu(reference), cpu(target));
    const f = (x: number) => (x * scale).toFixed(3);
    return `${f(r.ratio)} [${f(r.lo)}–${f(r.hi)}]`;
  }

  /**
   * As totalRatio, but with the user-space CPU per connection taken as equal for both (the
   * average of the two): the client and server run the same code whatever the router does, so
   * a difference there is noise, and this leaves the kernel's difference, which is the router's.
   */
  kernelRatio(samples: readonly ConnSample[], target: number, reference: number, rounds: number): string {
    const per = (t: number, g: Group) =>
      Array.from({ length: rounds }, (_, r) => this.byRound.get(`${t}:${r}`)?.[g] ?? 0);
    const oks = (t: number) =>
      Array.from({ length: rounds }, (_, r) => samples.find((x) => x.target === t && x.round === r)?.ok ?? 0);
    const [kR, aR, oR, kT, aT, oT] = [
      per(reference, "kernel"),
      per(reference, "all"),
      oks(reference),
      per(target, "kernel"),
      per(target, "all"),
      oks(target),
    ];
    const sum = (xs: readonly number[], idx: readonly number[]) => idx.reduce((a, i) => a + (xs[i] ?? 0), 0);
    const r = bootstrap(rounds, (idx) => {
      const [okR, okT] = [Math.max(1, sum(oR, idx)), Math.max(1, sum(oT, idx))];
      const user = (sum(aR, idx) - sum(kR, idx) + sum(aT, idx) - sum(kT, idx)) / (okR + okT);
      return (user + sum(kR, idx) / okR) / (user + sum(kT, idx) / okT);
    });
    const f = (x: number) => x.toFixed(3);
    return `${f(r.value)} [${f(r.lo)}–${f(r.hi)}]`;
  }
}
