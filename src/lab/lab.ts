// A set of network namespaces that share one prefix, plus the processes started in them.
// Topologies (uplink-lab.ts, …) build on this; teardown is the same for all of them.
import { exec, run, type ExecOptions, type ExecResult } from "../system/exec.ts";
import { cleanupStale, destroyLabPrefix, destroyLabSync, writeOwnerFile } from "./cleanup.ts";
import { netnsName, newLabPrefix } from "./names.ts";
import { addNetns } from "./netns.ts";
import { spawnTracked, type TrackedProcess } from "./processes.ts";
import { waitForDad, waitForRoutesStable } from "./settle.ts";
import * as traffic from "./traffic.ts";

export class LabDestroyedError extends Error {
  constructor(prefix: string) {
    super(`lab ${prefix} was destroyed while it was being built`);
    this.name = "LabDestroyedError";
  }
}

export class NetnsLab implements traffic.LabRunner {
  readonly prefix: string;
  private readonly roles = new Map<string, string>();
  private readonly procs = new Set<TrackedProcess>();
  private building: Promise<unknown> | undefined;
  private destroying: Promise<void> | undefined;
  private exitHook: (() => void) | undefined;

  constructor(prefix: string = newLabPrefix()) {
    this.prefix = prefix;
  }

  /** Namespace name of a role; throws for a role this lab does not have. */
  netns(role: string): string {
    const ns = this.roles.get(role);
    if (!ns) throw new Error(`lab ${this.prefix} has no namespace for role "${role}"`);
    return ns;
  }

  get roleNames(): string[] {
    return [...this.roles.keys()];
  }

  exec(role: string, argv: readonly string[], opts: Omit<ExecOptions, "netns"> = {}): Promise<ExecResult> {
    return exec(argv, { timeoutMs: 15_000, ...opts, netns: this.netns(role) });
  }

  run(role: string, argv: readonly string[], opts: Omit<ExecOptions, "netns"> = {}): Promise<string> {
    return run(argv, { timeoutMs: 15_000, ...opts, netns: this.netns(role) });
  }

  /** Start a long-running process in a namespace; destroy() stops it (by pid). */
  spawn(role: string, argv: readonly string[]): TrackedProcess {
    if (this.destroying) throw new LabDestroyedError(this.prefix);
    const proc = spawnTracked(argv, { netns: this.netns(role) });
    this.procs.add(proc);
    void proc.exited.then(() => this.procs.delete(proc));
    return proc;
  }

  runClient(o: traffic.ClientOptions) {
    return traffic.runClient(this, o);
  }

  startHolder(o: traffic.HolderOptions) {
    return traffic.startHolder(this, o);
  }

  startEchoServer(o: traffic.EchoServerOptions) {
    return traffic.startEchoServer(this, o);
  }

  /** Wait until DAD is over and IPv6 routes have stopped changing in every namespace. */
  async settle(): Promise<void> {
    await Promise.all([...this.roles.values()].map((ns) => waitForDad(ns)));
    await Promise.all([...this.roles.values()].map((ns) => waitForRoutesStable(ns)));
  }

  /**
   * Make another process (e.g. a detached `nflb lab up` keeper) the owner, so cleanupStale in
   * later runs leaves the lab alone after this process exits; also drops the exit hook.
   */
  async handOver(pid: number): Promise<void> {
    await writeOwnerFile(this.prefix, pid);
    this.removeExitHook();
  }

  /**
   * Stop every process, delete every namespace with this lab's prefix, the host link and the
   * owner file. Idempotent; safe while or after a build failed (waits for the build to stop).
   */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  /** Run a build so destroy() can wait for it and the build stops at its next step. */
  protected async runBuild(body: () => Promise<void>): Promise<void> {
    if (this.building) throw new Error("lab is already built");
    const p = (async () => {
      this.check();
      await cleanupStale();
      this.check();
      // The owner file comes first: a namespace without one is treated as an orphan.
      await writeOwnerFile(this.prefix);
      this.installExitHook();
      await body();
      this.check();
    })();
    this.building = p;
    await p;
  }

  /** Throws once destroy() has been called: builds stop between steps. */
  protected check(): void {
    if (this.destroying) throw new LabDestroyedError(this.prefix);
  }

  protected async addRole(role: string): Promise<string> {
    this.check();
    const ns = netnsName(this.prefix, role);
    // Recorded before creation so teardown covers a half-created namespace too.
    this.roles.set(role, ns);
    await addNetns(ns);
    return ns;
  }

  private async teardown(): Promise<void> {
    if (this.building) await this.building.catch(() => undefined);
    await Promise.all([...this.procs].map((p) => p.stop(1000)));
    await destroyLabPrefix(this.prefix);
    this.removeExitHook();
  }

  /** Last resort when the test process exits without destroy(): synchronous, best effort. */
  private installExitHook(): void {
    const prefix = this.prefix;
    const roles = this.roles;
    const procs = this.procs;
    this.exitHook = () => destroyLabSync(prefix, roles.values(), procs);
    process.once("exit", this.exitHook);
  }

  private removeExitHook(): void {
    if (this.exitHook) process.removeListener("exit", this.exitHook);
    this.exitHook = undefined;
  }
}
