import { isInterfaceName, parseAddr, type Addr } from "../net/ip.ts";
import { realClock, type Clock, type TimerId } from "./probe-clock.ts";
import {
  describeExit,
  spawnLines,
  spawnPolledLines,
  stopProcess,
  type LineProcess,
  type SpawnLines,
} from "./probe-process.ts";
import { FpingBurst } from "./fping-burst.ts";
import { RoundCollector } from "./probe-rounds.ts";
import type { FastReprobe, ProbeSource, Prober, ProberHooks, RoundResult, RoundSink } from "./probe-types.ts";
import { gridStart, wakeGroupFor, type CancelWake, type WakeGroup } from "./wake-group.ts";

// One long-lived `fping -l` per uplink: one process for all targets and all rounds, ~8x cheaper
// than a ping per probe. fping 5.1 prints one line per reply or timeout in loop mode:
//   198.18.200.1 : [12], 64 bytes, 0.091 ms (0.125 avg, 0% loss)
//   198.18.200.2 : [13], timed out (0.169 avg, 20% loss)
// and nothing at all for a ping it could not send (no route, no address), so rounds also need a
// deadline of their own. In count mode (`-c N`, the short-lived bursts of fping-burst.ts) it prints
// the same lines, then its summary on stderr, and exits (1 when something was lost).
//
// Cheap in the steady state: fping's stdout is read only at the prober's own wake-ups (one per
// round, shared with every other uplink through wake-group.ts), not line by line, and fping starts
// on a grid common to all uplinks so that their rounds, and so their wake-ups, coincide. `-D` makes
// fping stamp each line with the time it printed it, so reading later loses no timing.
//
// Suspect → fast re-probe: with `overdueAfter(ms)` set (by the monitor, from the RTTs it has seen),
// the prober looks at each regular round `ms` after fping sent it; one with fewer than `minAnswers`
// answers by then is reported overdue, and the monitor may ask for a burst: one `fping -c` with the
// same -I/-S binding, spawned only then.

export interface FpingOptions {
  /** Targets as written in the config (IPv4 and IPv6 may be mixed). */
  targets: readonly string[];
  intervalMs: number;
  timeoutMs: number;
  /** ICMP payload bytes. */
  size: number;
}

export interface FpingLine {
  target: string;
  seq: number;
  rttMs: number | null;
  /** With `-D`: when fping printed the line, wall-clock epoch milliseconds. */
  printedAt?: number;
}

const LINE_RE =
  /^(?:\[(\d+(?:\.\d+)?)\]\s+)?(\S+)\s+:\s+\[(\d+)\],\s+(?:\d+ bytes,\s+(\d+(?:\.\d+)?) ms|timed out)/;

/** Parse one loop-mode line; null for anything else (ICMP errors, duplicates, summaries). */
export function parseFpingLine(line: string): FpingLine | null {
  const m = LINE_RE.exec(line);
  if (!m?.[2] || m[3] === undefined) return null;
  const l: FpingLine = { target: m[2], seq: Number(m[3]), rttMs: m[4] === undefined ? null : Number(m[4]) };
  if (m[1] !== undefined) l.printedAt = Number(m[1]) * 1000;
  return l;
}

/** fping refuses periods below 10 ms for good reason; a timeout over 10 s is a config error anyway. */
const MIN_PERIOD_MS = 10;

/**
 * argv for one uplink. `-I` binds the socket to the device (SO_BINDTODEVICE), so a probe can only
 * ever leave through this uplink, even when its routing table is empty; `-S` (one per family)
 * picks the uplink's address, which the `from ADDR lookup TABLE` rule routes by the uplink's gateway.
 * Loop mode (`-l`) by default; with `count`, `count` rounds (`-c`) and exit.
 */
export function fpingArgv(
  o: Pick<FpingOptions, "intervalMs" | "timeoutMs" | "size">,
  iface: string,
  sources: readonly Addr[],
  targets: readonly Addr[],
  count?: number,
): string[] {
  if (!isInterfaceName(iface)) throw new Error(`fping: invalid interface name ${JSON.stringify(iface)}`);
  if (targets.length === 0) throw new Error("fping: no targets");
  const period = Math.max(MIN_PERIOD_MS, Math.round(o.intervalMs));
  // Loop mode stamps its lines (-D): they are read in batches, up to a round after they were printed.
  const mode = count === undefined ? ["-l", "-D"] : ["-c", String(Math.max(1, Math.round(count)))];
  const argv = ["fping", ...mode, "-p", String(period), "-t", String(Math.max(1, Math.round(o.timeoutMs)))];
  // -i 1: send to all targets of a round at (nearly) the same time instead of 10 ms apart.
  argv.push("-i", "1", "-b", String(o.size), "-e", "-I", iface);
  for (const fam of [4, 6] as const) {
    const a = sources.find((s) => s.family === fam);
    if (a) argv.push("-S", a.text);
  }
  argv.push(...targets.map((t) => t.text));
  return argv;
}

export interface FpingDeps extends ProberHooks {
  clock?: Clock;
  /** How fping is started; by default the loop-mode fping is read on demand, bursts as they print. */
  spawn?: SpawnLines;
  /** Wait this long before restarting an fping that exited on its own; doubles while it keeps failing. */
  restartDelayMs?: number;
  log?: (msg: string) => void;
  /** fping's own failures (exited, stalled, garbage), each with the restart delay; default `log`. */
  warn?: (msg: string) => void;
}

const MAX_RESTART_DELAY_MS = 30_000;
const ANCHOR_SLACK_MS = 20;
/** How late a wake-up may come, at most, so that it can share one with other uplinks'. */
const MAX_WAKE_SLACK_MS = 50;
/** A round found overdue is read again this soon after fping must have printed its timeouts. */
const TIMEOUT_READ_MS = 5;

/** Before fping's first line we do not know when it really started sending: be generous. */
const STARTUP_ALLOWANCE_MS = 1000;

interface Generation {
  proc: LineProcess | undefined;
  /** Our seq of fping's `[0]`. */
  base: number;
  /** When fping sent (or would have sent) its `[0]`. */
  anchor: number;
  anchorKnown: boolean;
  /** Canonical address text → config target, for the targets this generation probes. */
  probed: Map<string, string>;
  /** Why nothing is probed: no address of any target's family, or fping is not running. */
  idle: string | undefined;
  /** `idle` is fping's own failure (it exited, stalled, printed garbage), not the link's. */
  fault: boolean;
  /** Why we killed this fping, when we did. */
  killedFor: string | undefined;
  /** Lines in a row that were not fping's result lines, and the last of them. */
  garbage: number;
  lastGarbage: string;
  /** When we last read any line from it. */
  lastOutputAt: number;
}

/** This many unreadable lines in a row (and no result line) and fping is taken for broken. */
const GARBAGE_LINES = 20;

export class FpingProber implements Prober, FastReprobe {
  readonly fast: FastReprobe = this;
  private readonly clock: Clock;
  private readonly spawn: SpawnLines;
  private readonly restartDelayMs: number;
  private readonly collector: RoundCollector;
  private readonly targets: { text: string; addr: Addr }[];
  private gen: Generation | undefined;
  private source: ProbeSource | undefined;
  private nextSeq = 0;
  private readonly wakes: WakeGroup;
  private tickWake: CancelWake | undefined;
  private launchWake: CancelWake | undefined;
  /** Extra reads of rounds found overdue, at the moment their timeouts are due. */
  private readonly timeoutReads = new Set<CancelWake>();
  private restartTimer: TimerId | undefined;
  /** fpings in a row that exited before printing a single result. */
  private failedStarts = 0;
  /** fpings restarted because they fell silent, since the last result line. */
  private silentRestarts = 0;
  /** Look at regular rounds this long after they were sent (null: not watching). */
  private overdueMs: number | null = null;
  /** Every regular round up to this seq has been looked at (or was concluded before). */
  private checkedThrough = -1;
  private checkTimer: TimerId | undefined;
  private burstRun: FpingBurst | undefined;
  private confirmRun: FpingBurst | undefined;

  constructor(
    private readonly o: FpingOptions,
    private readonly sink: RoundSink,
    private readonly deps: FpingDeps = {},
  ) {
    this.clock = deps.clock ?? realClock;
    this.spawn = deps.spawn ?? spawnPolledLines;
    this.restartDelayMs = deps.restartDelayMs ?? 1000;
    this.targets = o.targets.map((text) => {
      const addr = parseAddr(text);
      if (!addr) throw new Error(`fping: not an address: ${text}`);
      return { text, addr };
    });
    this.collector = new RoundCollector(o.targets, this.clock, sink, {
      beforeExpire: () => this.gen?.proc?.poll?.(),
      silent: (startedAt) => this.silentRound(startedAt),
    });
    this.wakes = wakeGroupFor(this.clock);
  }

  start(source: ProbeSource): void {
    if (this.gen || this.launchWake) throw new Error("fping prober already started");
    this.source = source;
    this.launchOnGrid();
  }

  /** Start fping at the next multiple of the interval, in phase with the other uplinks' fpings. */
  private launchOnGrid(): void {
    const now = this.clock.now();
    const at = gridStart(now, this.o.intervalMs);
    const go = () => {
      this.launchWake = undefined;
      if (!this.source) return;
      this.launch();
      if (!this.tickWake) this.scheduleTick();
    };
    if (at <= now) go();
    else this.launchWake = this.wakes.at(at, 0, go);
  }

  async stop(): Promise<void> {
    const gen = this.gen;
    this.gen = undefined;
    this.source = undefined;
    for (const cancel of [this.tickWake, this.launchWake, ...this.timeoutReads]) cancel?.();
    this.timeoutReads.clear();
    if (this.restartTimer !== undefined) this.clock.clearTimeout(this.restartTimer);
    if (this.checkTimer !== undefined) this.clock.clearTimeout(this.checkTimer);
    this.tickWake = this.launchWake = this.restartTimer = this.checkTimer = undefined;
    // Rounds in flight tell nothing about the link (we are stopping, e.g. for a new source
    // address); reporting them lost could take a healthy uplink down.
    this.collector.discardPending();
    const burst = this.burstRun;
    const confirm = this.confirmRun;
    this.burstRun = this.confirmRun = undefined;
    await Promise.all([gen?.proc ? stopProcess(gen.proc) : undefined, burst?.stop(), confirm?.stop()]);
  }

  overdueAfter(ms: number | null): void {
    this.overdueMs = ms === null || !(ms > 0) ? null : ms;
  }

  burst(seq: number, count: number, spacingMs: number): boolean {
    const gen = this.gen;
    const src = this.source;
    if (!gen || !src || !gen.proc || gen.idle !== undefined || this.burstRun || count < 1) return false;
    const targets = this.targets.filter((t) => gen.probed.has(t.addr.text));
    const o = { intervalMs: spacingMs, timeoutMs: this.o.timeoutMs, size: this.o.size };
    const argv = fpingArgv(
      o,
      src.iface,
      src.addresses,
      targets.map((t) => t.addr),
      count,
    );
    const run = new FpingBurst(
      { argv, seq, count, spacingMs, timeoutMs: this.o.timeoutMs, targets, allTargets: this.o.targets },
      this.sink,
      {
        clock: this.clock,
        spawn: this.deps.spawn ?? spawnLines,
        parse: parseFpingLine,
        ...(this.deps.log ? { log: this.deps.log } : {}),
      },
    );
    this.burstRun = run;
    void run.done.then(() => {
      if (this.burstRun === run) this.burstRun = undefined;
    });
    return true;
  }

  confirm(count: number, spacingMs: number, timeoutMs: number): Promise<RoundResult[]> | null {
    const gen = this.gen;
    const src = this.source;
    if (!gen || !src || !gen.proc || gen.idle !== undefined || this.confirmRun || count < 1) return null;
    const targets = this.targets.filter((t) => gen.probed.has(t.addr.text));
    if (targets.length === 0) return null;
    const o = { intervalMs: spacingMs, timeoutMs, size: this.o.size };
    const argv = fpingArgv(
      o,
      src.iface,
      src.addresses,
      targets.map((t) => t.addr),
      count,
    );
    const rounds: RoundResult[] = [];
    const run = new FpingBurst(
      { argv, seq: -1, count, spacingMs, timeoutMs, targets, allTargets: this.o.targets },
      (r) => rounds.push(r),
      {
        clock: this.clock,
        spawn: this.deps.spawn ?? spawnLines,
        parse: parseFpingLine,
        ...(this.deps.log ? { log: this.deps.log } : {}),
      },
    );
    this.confirmRun = run;
    return run.done.then(() => {
      if (this.confirmRun === run) this.confirmRun = undefined;
      return rounds;
    });
  }

  private launch(): void {
    const src = this.source;
    if (!src) return;
    const now = this.clock.now();
    const probed = new Map<string, string>();
    for (const t of this.targets)
      if (src.addresses.some((a) => a.family === t.addr.family)) probed.set(t.addr.text, t.text);
    const gen: Generation = {
      proc: undefined,
      base: this.nextSeq,
      anchor: now,
      anchorKnown: false,
      probed,
      idle: undefined,
      fault: false,
      killedFor: undefined,
      garbage: 0,
      lastGarbage: "",
      lastOutputAt: now,
    };
    this.gen = gen;
    if (probed.size === 0) {
      gen.idle = `no address on ${src.iface} for ${this.families()}`;
      this.openThrough(gen, gen.base);
      return;
    }
    const targets = this.targets.filter((t) => probed.has(t.addr.text)).map((t) => t.addr);
    const argv = fpingArgv(this.o, src.iface, src.addresses, targets);
    gen.anchor = now + STARTUP_ALLOWANCE_MS;
    gen.proc = this.spawn(argv, (line) => this.onLine(gen, line));
    this.deps.log?.(`started ${argv.join(" ")} (pid ${gen.proc.pid ?? "?"})`);
    const proc = gen.proc;
    void proc.exited.then((e) => {
      if (this.gen !== gen) return;
      // The prober failed, not the link: the rounds it misses count for nothing (uplink-state.ts)
      // until a restarted fping reports again. One that can't send at all (e.g. sendto refused)
      // prints nothing: that silence counts as loss once a restart did not help (silentRound).
      const why = gen.killedFor ?? `fping ${describeExit(e, proc.stderr())}`;
      const delay = this.restartDelay();
      (this.deps.warn ?? this.deps.log)?.(`${why}; restarting in ${delay} ms`);
      gen.proc = undefined;
      gen.idle = `${why}; restarting`;
      gen.fault = true;
      this.collector.concludeAll(gen.idle, true);
      this.restartTimer = this.clock.setTimeout(() => {
        this.restartTimer = undefined;
        if (this.gen !== gen) return;
        this.launchOnGrid();
      }, delay);
    });
  }

  private garbageWhy(gen: Generation): string {
    return `fping printed ${gen.garbage} unreadable line(s), e.g. ${JSON.stringify(gen.lastGarbage.slice(0, 60))}`;
  }

  /** Kill this generation's fping (by its pid) for `why`; the exit handler restarts it. */
  private kill(gen: Generation, why: string): void {
    if (!gen.proc || gen.killedFor !== undefined) return;
    gen.killedFor = why;
    gen.proc.kill("SIGKILL");
  }

  /**
   * A round got no report at all by its deadline. A running fping prints a line for every probe,
   * answered or not, unless it cannot send; so the first time, take it for stalled: restart it and
   * let the round count for nothing. Silent again after that restart: the silence is real.
   */
  private silentRound(startedAt: number): string | undefined {
    const gen = this.gen;
    if (!gen?.proc || gen.idle !== undefined) return undefined;
    if (gen.killedFor !== undefined) return `${gen.killedFor}; restarting`;
    if (gen.garbage > 0) {
      // It talks, but not about probes: broken, whatever the link does.
      const why = this.garbageWhy(gen);
      this.kill(gen, why);
      return `${why}; restarting`;
    }
    if (gen.lastOutputAt > startedAt || this.silentRestarts > 0) return undefined;
    this.silentRestarts++;
    const why = `fping printed nothing for ${Math.round(this.clock.now() - gen.lastOutputAt)} ms (stalled?)`;
    this.kill(gen, why);
    return `${why}; restarting`;
  }

  private restartDelay(): number {
    const d = Math.min(MAX_RESTART_DELAY_MS, this.restartDelayMs * 2 ** this.failedStarts);
    this.failedStarts = Math.min(this.failedStarts + 1, 16);
    return d;
  }

  private families(): string {
    const fams = [...new Set(this.targets.map((t) => t.addr.family))].sort();
    return fams.map((f) => `IPv${f}`).join("/") + " targets";
  }

  private onLine(gen: Generation, line: string): void {
    if (this.gen !== gen) return;
    const l = parseFpingLine(line);
    gen.lastOutputAt = this.clock.now();
    if (!l) {
      if (!line.trim()) return;
      gen.lastGarbage = line;
      if (++gen.garbage >= GARBAGE_LINES) this.kill(gen, this.garbageWhy(gen));
      return;
    }
    gen.garbage = 0;
    this.silentRestarts = 0;
    // fping prints targets as given, and we give canonical text.
    const target = gen.probed.get(l.target) ?? gen.probed.get(parseAddr(l.target)?.text ?? "");
    if (target === undefined) return;
    const now = this.clock.now();
    // Lines are read in batches: the time fping printed one (-D) says when its probe left, the
    // time we read it only bounds that. Wall clock → our monotonic clock; never in the future.
    const printed =
      l.printedAt === undefined ? now : Math.min(now, l.printedAt - ((this.clock.wallNow?.() ?? now) - now));
    const sentAt = printed - (l.rttMs ?? this.o.timeoutMs) - l.seq * this.o.intervalMs;
    // fping keeps a fixed schedule from its start; our estimate of it only errs late (event-loop
    // delay). Move later at once (safe: deadlines get longer), earlier only slowly.
    const anchor =
      !gen.anchorKnown || sentAt > gen.anchor ? sentAt : gen.anchor - (gen.anchor - sentAt) * 0.1;
    const moved = Math.abs(anchor - gen.anchor);
    gen.anchor = anchor;
    gen.anchorKnown = true;
    this.failedStarts = 0;
    // Deadlines are a safety net with ample slack: re-plan them only when the estimate really moved.
    if (moved > ANCHOR_SLACK_MS) this.collector.reschedule((s) => this.deadline(gen, s));
    const seq = gen.base + l.seq;
    this.openThrough(gen, seq);
    this.collector.report(seq, target, l.rttMs);
  }

  /** Open every round of this generation up to `seq`, in order. */
  private openThrough(gen: Generation, seq: number): void {
    // A jump far ahead (clock stall, garbage) skips rounds instead of opening thousands.
    if (seq - this.nextSeq > 100) this.nextSeq = seq;
    for (; this.nextSeq <= seq; this.nextSeq++) {
      const s = this.nextSeq;
      const probed = gen.idle === undefined ? [...gen.probed.values()] : [];
      this.collector.open(s, this.startOf(gen, s), this.deadline(gen, s), probed, gen.idle, gen.fault);
    }
  }

  private startOf(gen: Generation, seq: number): number {
    return gen.idle === undefined ? gen.anchor + (seq - gen.base) * this.o.intervalMs : this.clock.now();
  }

  private deadline(gen: Generation, seq: number): number {
    return this.startOf(gen, seq) + this.o.timeoutMs + this.o.intervalMs + 250;
  }

  /**
   * Once per interval: read fping's output, open the rounds the schedule says have started (so
   * silence still concludes rounds), and look for an overdue one. Once fping's schedule is known
   * the wake-up follows it, at each round's start + overdueMs (mid-round when not watching), late
   * by at most a quarter of the interval so it can be shared with other uplinks.
   */
  private scheduleTick(): void {
    this.tickWake?.();
    const { at, slack } = this.nextTick();
    this.tickWake = this.wakes.at(at, slack, () => {
      this.tickWake = undefined;
      const gen = this.gen;
      if (!gen) return;
      this.service(gen);
      this.scheduleTick();
    });
  }

  /**
   * Read what fping printed, open the rounds due by its schedule, and look for an overdue one.
   * Without fping (idle), one failed round per call.
   */
  private service(gen: Generation): void {
    if (gen.idle !== undefined) {
      this.openThrough(gen, this.nextSeq);
      return;
    }
    gen.proc?.poll?.();
    if (this.gen !== gen || gen.idle !== undefined) return;
    const due = Math.floor((this.clock.now() - gen.anchor) / this.o.intervalMs);
    if (due >= 0) this.openThrough(gen, gen.base + due);
    this.checkOverdue(gen, false);
  }

  private nextTick(): { at: number; slack: number } {
    const gen = this.gen;
    const iv = this.o.intervalMs;
    const now = this.clock.now();
    const slack = Math.min(MAX_WAKE_SLACK_MS, iv / 4);
    if (!gen || gen.idle !== undefined || !gen.anchorKnown) return { at: now + iv, slack: iv / 2 };
    const lag = this.overdueMs ?? iv / 2;
    const k = Math.floor((now - lag - gen.anchor) / iv) + 1;
    const at = now + Math.min(2 * iv, Math.max(1, gen.anchor + k * iv + lag - now));
    return { at, slack: this.overdueMs === null ? iv / 2 : slack };
  }

  /** A round found overdue: read fping again as soon as its timeouts are due, not a round later. */
  private readAtTimeout(gen: Generation, seq: number): void {
    const cancel = this.wakes.at(this.startOf(gen, seq) + this.o.timeoutMs + TIMEOUT_READ_MS, 0, () => {
      this.timeoutReads.delete(cancel);
      if (this.gen === gen && gen.idle === undefined) this.service(gen);
    });
    this.timeoutReads.add(cancel);
  }

  /**
   * Report the regular rounds whose look came (sent at least overdueMs ago) with fewer than
   * minAnswers answers. A suspect round is looked at again one event-loop turn later: after a
   * stalled loop the timer runs before the pipe reads that may hold its answers.
   */
  private checkOverdue(gen: Generation, again: boolean): void {
    const after = this.overdueMs;
    const onOverdue = this.deps.onOverdue;
    if (after === null || !onOverdue || !gen.anchorKnown || gen.idle !== undefined || this.gen !== gen)
      return;
    if (again) gen.proc?.poll?.();
    const last = gen.base + Math.floor((this.clock.now() - after - gen.anchor) / this.o.intervalMs);
    // After a stall, only the latest rounds: older ones are about to conclude anyway.
    const first = Math.max(this.checkedThrough + 1, gen.base, last - 1);
    const need = this.deps.minAnswers ?? 1;
    for (let s = first; s <= last; s++) {
      const n = this.collector.answered(s);
      if (n !== undefined && n < need) {
        // Output read on demand was read just now: no pipe read can still be waiting behind us.
        if (!again && !gen.proc?.poll) {
          if (this.checkTimer === undefined)
            this.checkTimer = this.clock.setTimeout(() => {
              this.checkTimer = undefined;
              this.checkOverdue(gen, true);
            }, 0);
          return;
        }
        this.checkedThrough = s;
        if (gen.proc?.poll) this.readAtTimeout(gen, s);
        onOverdue(s);
        continue;
      }
      this.checkedThrough = s;
    }
  }
}
