import { EventEmitter } from "node:events";
import { uplinkPassiveOf, type UplinkConfig } from "../config/schema.ts";
import { autoGatewayProblem } from "../net/gateways.ts";
import { parseAddr, type Addr } from "../net/ip.ts";
import { FpingProber } from "./fping.ts";
import { linkProblem, type LinkSource, type LinkState } from "./link-watch.ts";
import { realClock, type Clock } from "./probe-clock.ts";
import { dnsProbe } from "./probe-dns.ts";
import { httpProbe } from "./probe-http.ts";
import { InProcessProber } from "./probe-inprocess.ts";
import type { SpawnLines } from "./probe-process.ts";
import { tcpProbe } from "./probe-tcp.ts";
import type { ProbeSource, Prober, ProberHooks, RoundResult, RoundSink } from "./probe-types.ts";
import { Suspicion } from "./suspect.ts";
import {
  FamilyUplinkMonitor,
  targetFamilies,
  withFamilyTargets,
  withFollower,
  type Family,
} from "./family-monitor.ts";
import type { PassiveCheck, UplinkMonitor, UplinkMonitorEvents, UplinkObservation } from "./types.ts";
import {
  healthParams,
  initialHealth,
  judgeRound,
  observe,
  onLink,
  onLinkUnprobed,
  onPassiveDown,
  onRound,
  type HealthParams,
  type RoundVerdict,
  type Step,
  type UplinkHealth,
} from "./uplink-state.ts";

export interface UplinkMonitorDeps {
  clock?: Clock;
  /** How fping is started (icmp). */
  spawn?: SpawnLines;
  /**
   * The shared link watcher. Its `link` events supply the source addresses and take the uplink
   * down at once on a link problem. Start it (and await `start()`) before starting monitors.
   */
  link?: LinkSource;
  /** Without a link watcher: the uplink's addresses, fixed for the monitor's life. */
  addresses?: readonly (Addr | string)[];
  /** Replace the prober built from `probe.method` (tests); per family when the targets hold both. */
  prober?: (sink: RoundSink, hooks: ProberHooks, family?: 4 | 6) => Prober;
  /** Every round with its verdict, for debug logs and the probe CLI. */
  onRound?: (round: RoundResult, verdict: RoundVerdict, obs: UplinkObservation) => void;
  log?: (msg: string) => void;
  /** The prober's own failures (fping exited, stalled, printed garbage; it is restarted). */
  warn?: (msg: string) => void;
}

/** Passive health's re-probe rounds go this far apart (fping's shortest period). */
const PASSIVE_SPACING_MS = 10;

/** Default ports when `probe.port` is not set. */
export const DEFAULT_PROBE_PORTS = { tcp: 443, http: 80, dns: 53 } as const;

export function buildProber(
  u: UplinkConfig,
  sink: RoundSink,
  deps: UplinkMonitorDeps,
  hooks: ProberHooks = {},
): Prober {
  const p = u.probe;
  const common = { targets: p.targets, intervalMs: p.interval, timeoutMs: p.timeout };
  const clock = deps.clock ?? realClock;
  switch (p.method) {
    case "icmp":
      // Only fping re-probes fast on suspicion (FastReprobe); tcp/http/dns keep the regular cadence.
      return new FpingProber({ ...common, size: p.size }, sink, {
        clock,
        ...hooks,
        ...(deps.spawn ? { spawn: deps.spawn } : {}),
        ...(deps.log ? { log: deps.log } : {}),
        ...(deps.warn ? { warn: deps.warn } : {}),
      });
    case "tcp":
      return new InProcessProber(common, tcpProbe(p.port ?? DEFAULT_PROBE_PORTS.tcp), sink, { clock });
    case "http":
      return new InProcessProber(common, httpProbe(p.port ?? DEFAULT_PROBE_PORTS.http, p.path), sink, {
        clock,
      });
    case "dns":
      return new InProcessProber(common, dnsProbe(p.port ?? DEFAULT_PROBE_PORTS.dns), sink, { clock });
  }
}

/**
 * One uplink's health: a prober sending through this uplink only, the state machine of
 * uplink-state.ts, and link events from the shared watcher. Emits `round` after every round and
 * `change` on every transition (always with a reason). With a prober that offers it (fping), an
 * overdue round makes the uplink suspect and triggers a burst of extra rounds (suspect.ts).
 */
class UplinkMonitorImpl extends EventEmitter<UplinkMonitorEvents> implements UplinkMonitor {
  private readonly clock: Clock;
  private readonly params: HealthParams;
  private readonly prober: Prober | undefined;
  private health: UplinkHealth;
  private suspicion: Suspicion;
  private source: ProbeSource | undefined;
  private running = false;
  /** Addresses and gateways last seen, to tell the daemon when a lease changed them. */
  private linkKey: string | undefined;
  private proberOp: Promise<void> = Promise.resolve();
  /** A passive suspicion being confirmed; `since`: rounds sent before say nothing about it. */
  private passive: {
    check: PassiveCheck;
    since: number;
    /** No fping confirmation: this many regular rounds in a row must fail (`failed` so far). */
    viaRounds: number | null;
    failed: number;
  } | null = null;
  private readonly onLinkEvent = (s: LinkState) => {
    if (s.iface === this.uplink.interface) this.linkChanged(s);
  };

  constructor(
    private readonly name: string,
    private readonly uplink: UplinkConfig,
    private readonly deps: UplinkMonitorDeps,
    /** The one family of the probe targets, when they are all of one (family-monitor.ts). */
    private readonly only: Family | null = null,
  ) {
    super();
    this.clock = deps.clock ?? realClock;
    this.params = healthParams(uplink.probe);
    this.health = initialHealth(name, uplink.interface, this.clock.now());
    this.suspicion = this.newSuspicion();
    const sink: RoundSink = (r) => this.roundDone(r);
    const hooks: ProberHooks = { minAnswers: this.params.minTargets, onOverdue: (seq) => this.overdue(seq) };
    this.prober =
      deps.prober?.(sink, hooks) ??
      (uplink.probe.targets.length > 0 ? buildProber(uplink, sink, deps, hooks) : undefined);
  }

  private newSuspicion(): Suspicion {
    const p = this.uplink.probe;
    return new Suspicion({ intervalMs: p.interval, timeoutMs: p.timeout, downAfter: p.down_after });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.linkKey = undefined;
    this.health = initialHealth(this.name, this.uplink.interface, this.clock.now());
    this.suspicion = this.newSuspicion();
    this.prober?.fast?.overdueAfter(null);
    if (this.deps.link) {
      this.deps.link.on("link", this.onLinkEvent);
      const s = this.deps.link.get(this.uplink.interface);
      if (s) this.linkChanged(s);
      return;
    }
    const addresses = (this.deps.addresses ?? [])
      .map((a) => (typeof a === "string" ? parseAddr(a) : a))
      .filter((a): a is Addr => a !== null);
    this.setSource(addresses);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.passive = null;
    this.deps.link?.off("link", this.onLinkEvent);
    this.source = undefined;
    const p = this.prober;
    this.proberOp = this.proberOp.then(() => p?.stop());
    await this.proberOp;
  }

  snapshot(): UplinkObservation {
    return this.observed();
  }

  /** The observation; with targets of one family only, saying so (the other family follows it). */
  private observed(): UplinkObservation {
    const o = observe(this.health);
    return this.only ? withFollower(o, this.only) : o;
  }

  private linkChanged(s: LinkState): void {
    if (!this.running) return;
    const problem = linkProblem(s) ?? autoGatewayProblem(this.uplink.gateway, s);
    const now = this.clock.now();
    this.apply(this.prober ? onLink(this.health, problem, now) : onLinkUnprobed(this.health, problem, now));
    this.setSource(s.addresses);
    const key = JSON.stringify([s.addresses.map((a) => a.text), s.gw4, s.gw6]);
    const before = this.linkKey;
    this.linkKey = key;
    if (before !== undefined && before !== key) this.emit("link", this.observed());
  }

  /** (Re)start the prober when the uplink's addresses changed; probes always leave from them. */
  private setSource(addresses: readonly Addr[]): void {
    const key = (a: readonly Addr[]) => a.map((x) => x.text).join(",");
    if (this.source && key(this.source.addresses) === key(addresses)) return;
    const next: ProbeSource = { iface: this.uplink.interface, addresses: [...addresses] };
    const restart = this.source !== undefined;
    this.source = next;
    const p = this.prober;
    if (!p) return;
    this.proberOp = this.proberOp
      .then(async () => {
        if (restart) await p.stop();
        if (this.running && this.source === next) p.start(next);
      })
      .catch((err: unknown) => this.deps.log?.(`${this.name}: prober: ${(err as Error).message}`));
  }

  private roundDone(r: RoundResult): void {
    if (!this.running) return;
    // RTTs teach the overdue time only while the uplink is up: on the way back (carrier returned,
    // neighbour entry being resolved again, probes queued meanwhile) the first answers take
    // hundreds of ms, and would switch the fast re-probe off for the next 25 rounds.
    const learn = this.health.state === "up" && this.health.linkProblem === null;
    const step = onRound(this.health, r, this.params);
    this.apply(step);
    const v = step.verdict;
    if (v) this.suspicion.learn(r, { good: v.good, counted: v.counted && learn }, this.clock.now());
    const pv = this.passive;
    if (v && !r.burst && v.counted && pv?.viaRounds && r.startedAt >= pv.since) {
      if (v.good) this.passiveSettled(true, `round ${r.seq}: ${v.why}`);
      else if (++pv.failed >= pv.viaRounds)
        this.passiveSettled(false, `${pv.failed} probe round(s) in a row failed; last: ${v.why}`);
    }
    this.watch();
    const obs = this.observed();
    if (step.verdict) this.deps.onRound?.(r, step.verdict, obs);
    this.emit("round", obs);
  }

  /** Watch for overdue rounds only while up: no bursts while down. */
  private watch(): void {
    const h = this.health;
    const fast = this.prober?.fast;
    if (!fast) return;
    fast.overdueAfter(h.state === "up" && h.linkProblem === null ? this.suspicion.overdueMs() : null);
  }

  /** A regular round is overdue: suspect, and re-probe at once unless the policy says not now. */
  private overdue(seq: number): void {
    const fast = this.prober?.fast;
    if (!this.running || !fast) return;
    const now = this.clock.now();
    const plan = this.suspicion.plan(now, this.health);
    if (!plan) return;
    if (!fast.burst(seq, plan.count, plan.spacingMs)) return;
    this.suspicion.started(now);
    this.deps.log?.(
      `${this.name} suspect: round ${seq} overdue (${this.suspicion.overdueMs()} ms), ` +
        `${plan.count} extra rounds ${plan.spacingMs} ms apart`,
    );
  }

  /**
   * Passive health suspects this uplink (uplink-passive.ts): re-probe through it at once, with
   * fping's `confirm` when the prober has it (`confirm_rounds` rounds 10 ms apart, each lost unless
   * answered within the overdue time the regular rounds taught, else within `timeout`); other
   * probers let their next regular round decide. Down only when every re-probe fails.
   */
  passiveSuspect(check: PassiveCheck): boolean {
    const h = this.health;
    const cfg = uplinkPassiveOf(this.uplink);
    if (!this.running || !cfg || this.passive || !this.prober || h.state !== "up" || h.linkProblem !== null)
      return false;
    const rounds = cfg.confirm_rounds;
    const deadline = this.suspicion.overdueMs() ?? this.uplink.probe.timeout;
    const run = this.prober.fast?.confirm?.(rounds, PASSIVE_SPACING_MS, deadline) ?? null;
    const now = this.clock.now();
    this.passive = { check, since: now, viaRounds: run === null ? rounds : null, failed: 0 };
    const how = run
      ? `re-probing: ${rounds} round(s) ${PASSIVE_SPACING_MS} ms apart, ${deadline} ms each`
      : `the next ${rounds} probe round(s) decide`;
    this.emit("passive", { name: this.name, result: "suspect", reason: `${check.evidence()}; ${how}` });
    if (run)
      void run.then((rs) => {
        const judged = rs.map((r) => judgeRound(r, this.params, null));
        const i = judged.findIndex((v) => v.good);
        if (i >= 0 || rs.length < rounds)
          this.passiveSettled(
            true,
            i >= 0 ? `re-probe ${i + 1}/${rounds}: ${judged[i]?.why ?? ""}` : "re-probe interrupted",
          );
        else
          this.passiveSettled(
            false,
            `${rounds} re-probe round${rounds === 1 ? "" : "s"} without an answer within ${deadline} ms`,
          );
      });
    return true;
  }

  private passiveSettled(answered: boolean, what: string): void {
    const p = this.passive;
    this.passive = null;
    if (!p || !this.running) return;
    const evidence = p.check.evidence();
    if (answered) {
      this.emit("passive", { name: this.name, result: "cleared", reason: `${evidence}; but ${what}` });
      return;
    }
    const reason = `passive: ${evidence}, confirmed by probe (${what})`;
    this.emit("passive", { name: this.name, result: "confirmed", reason });
    this.apply(onPassiveDown(this.health, reason, this.clock.now()));
  }

  private apply(step: Step): void {
    this.health = step.next;
    this.watch();
    if (!step.changed) return;
    this.deps.log?.(`${this.name} ${this.health.state}: ${this.health.reason}`);
    this.emit("change", this.observed());
  }
}

/**
 * An uplink's monitor: one per family when its probe targets hold at least two of each family
 * (family-monitor.ts), each family judged by its own targets; with targets of one family, that family judges the uplink and
 * the other follows it. `deps.prober`, when given, is asked once per family.
 */
export function createUplinkMonitor(
  name: string,
  uplink: UplinkConfig,
  deps: UplinkMonitorDeps = {},
): UplinkMonitor {
  const fams = targetFamilies(uplink);
  if (fams.length < 2) return new UplinkMonitorImpl(name, uplink, deps, fams[0] ?? null);
  // One target's random loss is too noisy to move a family's traffic on (10 % loss on a single
  // target downs it every few minutes): a family is judged apart only with two targets or more;
  // otherwise every target judges the uplink together, as one family's would.
  if (fams.some((f) => withFamilyTargets(uplink, f).probe.targets.length < 2))
    return new UplinkMonitorImpl(name, uplink, deps, null);
  const one = (fam: 4 | 6) => {
    const log = deps.log;
    const warn = deps.warn;
    const prober = deps.prober;
    return new UplinkMonitorImpl(name, withFamilyTargets(uplink, fam), {
      ...deps,
      ...(log ? { log: (m: string) => log(`IPv${fam} ${m}`) } : {}),
      ...(warn ? { warn: (m: string) => warn(`IPv${fam} ${m}`) } : {}),
      ...(prober ? { prober: (sink: RoundSink, hooks: ProberHooks) => prober(sink, hooks, fam) } : {}),
    });
  };
  return new FamilyUplinkMonitor(name, one(4), one(6));
}
