import { EventEmitter } from "node:events";
import type { BackendConfig, ServiceConfig } from "../config/schema.ts";
import { parseHostPort } from "../net/ip.ts";
import { checkPhase, WaitToken, type CheckLimiter } from "./check-limiter.ts";
import {
  defaultProbe,
  type BackendCheckSpec,
  type BackendProbe,
  type ProbeResult,
} from "./backend-probes.ts";
import type { BackendMonitor, BackendMonitorEvents, BackendObservation, HealthState } from "./types.ts";

export type { BackendCheckSpec, BackendProbe } from "./backend-probes.ts";

export interface BackendCheckerOptions {
  /** The check itself; tests inject a fake. Defaults to real TCP/HTTP checks. */
  probe?: BackendProbe;
  /** State before the first verdict. `apply` assumes every backend healthy, so: up. */
  initial?: HealthState;
  /** Delay of the first check (ms): spreads checkers started together over their interval. */
  phaseMs?: number;
  /** Shared bound on checks in flight; a check waits for a slot before its timeout starts. */
  limiter?: CheckLimiter;
}

const TIMED_OUT = new Error("check timed out");

/**
 * Health of one backend: a check every `interval` (the next one starts `interval` after the last
 * started, or when it ends if it ran longer), each bounded by `timeout`; `fall` failures in a row
 * take it down, `rise` successes in a row bring it back. Only plain `setTimeout` is used, so
 * node:test's `mock.timers` drives it. Thousands of these share one process and one event loop:
 * with `phaseMs` the first check waits its phase, with `limiter` every check waits for a slot.
 */
export class BackendChecker extends EventEmitter<BackendMonitorEvents> implements BackendMonitor {
  readonly spec: BackendCheckSpec;
  private readonly probe: BackendProbe;
  private state: HealthState;
  private reason = "not checked yet";
  private since = Date.now();
  private okRun = 0;
  private failRun = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private inFlight: Promise<void> | undefined;
  private checks = 0;
  private readonly phaseMs: number;
  private readonly limiter: CheckLimiter | undefined;
  /** Ends a wait for a limiter slot when the checker stops. */
  private stopping = new WaitToken();

  constructor(spec: BackendCheckSpec, opts: BackendCheckerOptions = {}) {
    super();
    this.spec = spec;
    this.probe = opts.probe ?? defaultProbe;
    this.state = opts.initial ?? "up";
    this.phaseMs = Math.max(0, opts.phaseMs ?? 0);
    this.limiter = opts.limiter;
    if (spec.method === "none") this.reason = "not checked (check: none)";
  }

  start(): void {
    if (this.running || this.spec.method === "none") return;
    this.running = true;
    this.stopping = new WaitToken();
    if (this.phaseMs > 0) this.schedule(this.phaseMs);
    else this.inFlight = this.runOnce();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopping.cancel();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }

  snapshot(): BackendObservation {
    return {
      service: this.spec.service,
      backend: this.spec.backend,
      state: this.state,
      reason: this.reason,
      since: this.since,
    };
  }

  /**
   * Down now, for a reason the checks did not see (passive health): `rise` good checks in a row
   * bring it back, as after `fall` failed ones.
   */
  markDown(reason: string): void {
    if (this.state === "down") return;
    this.okRun = 0;
    this.transition("down", reason);
  }

  /** Checks concluded so far (for tests and status). */
  get checkCount(): number {
    return this.checks;
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.inFlight = this.runOnce();
    }, ms);
  }

  private async runOnce(): Promise<void> {
    const release = this.limiter ? await this.limiter.acquire(this.stopping) : null;
    if (!this.running) {
      release?.();
      return;
    }
    // The interval counts from when the check could start, not from when it began to wait.
    const started = Date.now();
    let result: ProbeResult;
    try {
      result = await this.checkWithTimeout();
    } finally {
      release?.();
    }
    if (!this.running) return;
    this.checks++;
    this.record(result);
    // An interval of 0 must not become a busy loop.
    const wait = Math.max(10, this.spec.intervalMs) - (Date.now() - started);
    // A check that took the whole interval is followed at once by the next.
    if (wait > 0) this.schedule(wait);
    else this.inFlight = this.runOnce();
  }

  private checkWithTimeout(): Promise<ProbeResult> {
    const ac = new AbortController();
    return new Promise<ProbeResult>((resolve) => {
      const timer = setTimeout(() => {
        // A reason of our own: the default one is a new DOMException per timed-out check.
        ac.abort(TIMED_OUT);
        resolve({ ok: false, detail: `no answer within ${this.spec.timeoutMs} ms` });
      }, this.spec.timeoutMs);
      this.probe(this.spec, ac.signal).then(
        (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        (e: unknown) => {
          clearTimeout(timer);
          resolve({ ok: false, detail: `check failed: ${(e as Error).message}` });
        },
      );
    });
  }

  private record(r: ProbeResult): void {
    if (r.ok) {
      this.okRun++;
      this.failRun = 0;
    } else {
      this.failRun++;
      this.okRun = 0;
    }
    if (this.state === "up" && this.failRun >= this.spec.fall) {
      this.transition("down", `${this.failRun} failed checks: ${r.detail}`);
    } else if (this.state === "down" && this.okRun >= this.spec.rise) {
      this.transition("up", `${this.okRun} good checks: ${r.detail}`);
    } else if (this.state === "up" && r.ok) {
      this.reason = r.detail;
    }
  }

  private transition(to: HealthState, reason: string): void {
    this.state = to;
    this.reason = reason;
    this.since = Date.now();
    this.emit("change", this.snapshot());
  }
}

/** The check of one backend as its service's `check` block describes it. */
export function backendCheckSpec(
  service: string,
  svc: ServiceConfig,
  backend: BackendConfig,
): BackendCheckSpec {
  const hp = parseHostPort(backend.address);
  if ("error" in hp) throw new Error(hp.error);
  const c = svc.check;
  return {
    service,
    backend: backend.address,
    address: hp.addr,
    port: c.port ?? hp.port,
    method: c.method,
    path: c.path,
    ...(c.expect_status !== undefined ? { expectStatus: c.expect_status } : {}),
    ...(c.host !== undefined ? { host: c.host } : {}),
    ...(c.sni !== undefined ? { sni: c.sni } : {}),
    ...(c.expect_body !== undefined ? { expectBody: c.expect_body } : {}),
    ...(c.ca !== undefined ? { ca: c.ca } : {}),
    intervalMs: c.interval,
    timeoutMs: c.timeout,
    rise: c.rise,
    fall: c.fall,
  };
}

/** Shaped like the daemon's backend monitor factory (`MonitorFactories.backend`). */
export function createBackendChecker(
  ctx: { service: string; svc: ServiceConfig; backend: BackendConfig },
  opts: BackendCheckerOptions = {},
): BackendChecker {
  return new BackendChecker(backendCheckSpec(ctx.service, ctx.svc, ctx.backend), opts);
}

/**
 * The daemon's checkers: each starts at its own phase of the interval and every check takes a
 * slot of one shared limiter, so a start with 250,000 backends is a steady stream of checks, not
 * one burst of sockets.
 */
export function spreadBackendChecker(
  ctx: { service: string; svc: ServiceConfig; backend: BackendConfig },
  limiter: CheckLimiter,
  opts: BackendCheckerOptions = {},
): BackendChecker {
  const spec = backendCheckSpec(ctx.service, ctx.svc, ctx.backend);
  const phaseMs = checkPhase(`${spec.service}\0${spec.backend}`, spec.intervalMs);
  return new BackendChecker(spec, { phaseMs, limiter, ...opts });
}
