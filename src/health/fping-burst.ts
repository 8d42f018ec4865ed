import { parseAddr, type Addr } from "../net/ip.ts";
import type { FpingLine } from "./fping.ts";
import type { Clock } from "./probe-clock.ts";
import { describeExit, stopProcess, type LineProcess, type SpawnLines } from "./probe-process.ts";
import { RoundCollector } from "./probe-rounds.ts";
import type { RoundSink } from "./probe-types.ts";

// One fast re-probe (suspect → burst): a short-lived `fping -c COUNT -p SPACING -t TIMEOUT` with the
// uplink's -I/-S binding, spawned only when a regular round is overdue. fping 5.1 prints in count
// mode the lines it prints in loop mode (`T : [i], 64 bytes, 0.03 ms (…)`, `T : [i], timed out (…)`),
// the `xmt/rcv/%loss` summary on stderr, and exits 0 (all answered) or 1 (something lost).
// Its rounds go to the monitor's sink as soon as each is concluded, with `burst` set.

export interface BurstRequest {
  /** `fping -c COUNT -p SPACING …` for these targets (fping.ts `fpingArgv` with a count). */
  argv: readonly string[];
  /** The overdue regular round; the burst's rounds carry it as their seq. */
  seq: number;
  count: number;
  spacingMs: number;
  timeoutMs: number;
  /** The targets probed (config text and address). */
  targets: readonly { text: string; addr: Addr }[];
  /** Every configured target, in config order (a RoundResult lists them all). */
  allTargets: readonly string[];
}

export interface BurstDeps {
  clock: Clock;
  spawn: SpawnLines;
  /** fping.ts `parseFpingLine`. */
  parse: (line: string) => FpingLine | null;
  log?: (msg: string) => void;
}

/** fping's start-up, before its first probe leaves: deadlines are a safety net, be generous. */
const STARTUP_ALLOWANCE_MS = 1000;
const DEADLINE_SLACK_MS = 250;

export class FpingBurst {
  /** Resolves once the helper has exited and every round was handed on or dropped. */
  readonly done: Promise<void>;
  private readonly proc: LineProcess | undefined;
  private readonly collector: RoundCollector;
  private readonly byText = new Map<string, string>();
  private stopping = false;

  constructor(
    private readonly req: BurstRequest,
    sink: RoundSink,
    private readonly deps: BurstDeps,
  ) {
    const { count, seq } = req;
    this.collector = new RoundCollector(req.allTargets, deps.clock, (r) =>
      sink({ ...r, seq, burst: { index: r.seq + 1, count } }),
    );
    for (const t of req.targets) this.byText.set(t.addr.text, t.text);
    const now = deps.clock.now();
    const probed = req.targets.map((t) => t.text);
    for (let i = 0; i < count; i++) {
      const start = now + i * req.spacingMs;
      const deadline = start + STARTUP_ALLOWANCE_MS + req.timeoutMs + DEADLINE_SLACK_MS;
      this.collector.open(i, start, deadline, probed);
    }
    let proc: LineProcess;
    try {
      proc = deps.spawn(req.argv, (line) => this.onLine(line));
    } catch (err) {
      deps.log?.(`fast re-probe: ${(err as Error).message}`);
      this.collector.discardPending();
      this.proc = undefined;
      this.done = Promise.resolve();
      return;
    }
    this.proc = proc;
    deps.log?.(`fast re-probe: started ${req.argv.join(" ")} (pid ${proc.pid ?? "?"})`);
    this.done = proc.exited.then((e) => {
      if (!this.stopping && (e.code === 0 || e.code === 1)) {
        // fping did its job: a target it printed nothing for got no answer.
        this.collector.concludeAll();
      } else {
        // Killed, or it could not probe at all (bad source address…): that says nothing about the
        // link, and counting it lost could take a healthy uplink down.
        if (!this.stopping) deps.log?.(`fast re-probe: fping ${describeExit(e, proc.stderr())}`);
        this.collector.discardPending();
      }
    });
  }

  /** Kill the helper; rounds still waiting are dropped. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.collector.discardPending();
    if (this.proc) await stopProcess(this.proc);
    await this.done;
  }

  private onLine(line: string): void {
    if (this.stopping) return;
    const l = this.deps.parse(line);
    if (!l || l.seq >= this.req.count) return;
    const target = this.byText.get(l.target) ?? this.byText.get(parseAddr(l.target)?.text ?? "");
    if (target === undefined) return;
    this.collector.report(l.seq, target, l.rttMs);
  }
}
