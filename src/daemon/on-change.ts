import { exec, type ExecResult } from "../system/exec.ts";
import type { DaemonEvent } from "./events.ts";
import type { Log } from "./log.ts";

/** A hook that outlives this is killed: a stuck script must not pile up behind a flapping link. */
export const HOOK_TIMEOUT_MS = 10_000;
/** Changes waiting for the hook beyond this are dropped (and logged). */
const MAX_QUEUE = 100;

export type HookRunner = (argv: readonly string[], env: NodeJS.ProcessEnv) => Promise<ExecResult>;

const runHook: HookRunner = (argv, env) =>
  exec(argv, { env, timeoutMs: HOOK_TIMEOUT_MS, killSignal: "SIGKILL" });

/** The environment the hook sees for one change. */
export function hookEnv(e: DaemonEvent, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...base,
    NFLB_KIND: e.kind,
    NFLB_NAME: e.name,
    NFLB_STATE: e.state,
    NFLB_REASON: e.reason,
    NFLB_TIME: e.at,
  };
  if (e.service !== undefined) env.NFLB_SERVICE = e.service;
  if (e.backend !== undefined) env.NFLB_BACKEND = e.backend;
  if (e.family !== undefined) env.NFLB_FAMILY = e.family;
  return env;
}

/**
 * Runs `on_change` (an argv, no shell) once per uplink/backend change, one at a time in order,
 * each bounded by HOOK_TIMEOUT_MS.
 */
export class OnChangeHook {
  private queue: DaemonEvent[] = [];
  private running: Promise<void> | null = null;
  /** Changes dropped since the last drain ended. */
  private dropped = 0;

  constructor(
    private argv: readonly string[] | undefined,
    private readonly log: Log,
    private readonly runner: HookRunner = runHook,
  ) {}

  setCommand(argv: readonly string[] | undefined): void {
    this.argv = argv;
  }

  notify(e: DaemonEvent): void {
    if (!this.argv || (e.kind !== "uplink" && e.kind !== "backend")) return;
    if (this.queue.length >= MAX_QUEUE) {
      // One line for the first drop; a burst of 250,000 backend changes must not be as many lines.
      if (this.dropped++ === 0)
        this.log.warn({ hook: this.argv, dropped: e }, "on_change hook is behind; dropping a change");
      return;
    }
    this.queue.push(e);
    this.kick();
  }

  /**
   * Start draining unless a drain runs. A change queued after a drain's loop saw the queue empty
   * but before the drain settled would otherwise wait for the next change: start again then.
   */
  private kick(): void {
    this.running ??= this.drain().finally(() => {
      this.running = null;
      if (this.dropped > 1)
        this.log.warn(
          { hook: this.argv, dropped: this.dropped },
          `on_change hook was behind; dropped ${this.dropped} changes`,
        );
      this.dropped = 0;
      if (this.queue.length > 0) this.kick();
    });
  }

  /** Wait for queued hooks (shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    for (let e = this.queue.shift(); e; e = this.queue.shift()) {
      const argv = this.argv;
      if (!argv) return;
      const t0 = performance.now();
      try {
        const r = await this.runner(argv, hookEnv(e));
        const ms = Math.round(performance.now() - t0);
        const fields = { hook: argv[0], kind: e.kind, name: e.name, state: e.state, code: r.code, ms };
        if (r.code === 0) this.log.debug(fields, "on_change hook ran");
        else this.log.warn({ ...fields, stderr: r.stderr.trim().slice(-500) }, "on_change hook failed");
      } catch (err) {
        this.log.warn({ hook: argv[0], err: (err as Error).message }, "on_change hook could not start");
      }
    }
  }
}
