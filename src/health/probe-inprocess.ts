import { parseAddr, type Addr } from "../net/ip.ts";
import { realClock, type Clock, type TimerId } from "./probe-clock.ts";
import { RoundCollector } from "./probe-rounds.ts";
import { sourceFor, type ProbeSource, type Prober, type RoundSink } from "./probe-types.ts";

/**
 * One probe: resolve with the RTT in ms, or null when no good answer came within `timeoutMs`.
 * Must never reject and must settle by itself within about `timeoutMs`.
 */
export type ProbeOnce = (target: Addr, source: Addr, timeoutMs: number) => Promise<number | null>;

export interface InProcessOptions {
  targets: readonly string[];
  intervalMs: number;
  timeoutMs: number;
}

/** A probe that does not settle by `timeout` + this is counted lost anyway. */
const DEADLINE_GRACE_MS = 100;

/**
 * Rounds of in-process probes (tcp, http, dns): every `interval`, one probe to every target, all
 * at the same time, each bound to the uplink's address of the target's family. Node sockets cannot
 * bind to a device or set a mark, so `localAddress` plus nflb's `from ADDR lookup TABLE` rule is
 * what keeps them on this uplink.
 */
export class InProcessProber implements Prober {
  private readonly clock: Clock;
  private readonly collector: RoundCollector;
  private readonly targets: { text: string; addr: Addr }[];
  private source: ProbeSource | undefined;
  private timer: TimerId | undefined;
  private nextSeq = 0;
  private anchor = 0;
  private roundsSinceStart = 0;

  constructor(
    private readonly o: InProcessOptions,
    private readonly probe: ProbeOnce,
    sink: RoundSink,
    deps: { clock?: Clock } = {},
  ) {
    this.clock = deps.clock ?? realClock;
    this.targets = o.targets.map((text) => {
      const addr = parseAddr(text);
      if (!addr) throw new Error(`probe: not an address: ${text}`);
      return { text, addr };
    });
    this.collector = new RoundCollector(o.targets, this.clock, sink);
  }

  start(source: ProbeSource): void {
    if (this.source) throw new Error("prober already started");
    this.source = source;
    this.anchor = this.clock.now();
    this.roundsSinceStart = 0;
    this.round();
  }

  async stop(): Promise<void> {
    this.source = undefined;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.collector.discardPending();
  }

  private round(): void {
    const src = this.source;
    if (!src) return;
    const seq = this.nextSeq++;
    const now = this.clock.now();
    const sends = this.targets
      .map((t) => ({ ...t, from: sourceFor(t.addr, src) }))
      .filter((t): t is typeof t & { from: Addr } => t.from !== undefined);
    const error = sends.length === 0 ? `no address on ${src.iface} for these targets` : undefined;
    this.collector.open(
      seq,
      now,
      now + this.o.timeoutMs + DEADLINE_GRACE_MS,
      sends.map((t) => t.text),
      error,
    );
    for (const t of sends) {
      void this.probe(t.addr, t.from, this.o.timeoutMs).then(
        (rtt) => this.collector.report(seq, t.text, rtt),
        () => this.collector.report(seq, t.text, null),
      );
    }
    // A fixed schedule from the start: a slow round does not push the next ones back.
    // After a stall, skip the missed rounds rather than firing them in a burst.
    this.roundsSinceStart = Math.max(
      this.roundsSinceStart + 1,
      Math.floor((now - this.anchor) / this.o.intervalMs) + 1,
    );
    const next = this.anchor + this.roundsSinceStart * this.o.intervalMs;
    this.timer = this.clock.setTimeout(() => this.round(), next - this.clock.now());
  }
}
