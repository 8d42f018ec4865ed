// A set of throw-away network namespaces for one bench run, torn down by prefix even when the
// bench fails or is interrupted. Same naming and owner-file scheme as the lab (src/lab), so a
// crashed bench is cleaned up by the next bench or lab run, and a live one is left alone.
import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exec, run, type ExecOptions, type ExecResult } from "../../src/system/exec.ts";
import { cleanupStale, destroyLabPrefix, destroyLabSync, writeOwnerFile } from "../../src/lab/cleanup.ts";
import { netnsName, newLabPrefix } from "../../src/lab/names.ts";
import { addNetns, ipBatch } from "../../src/lab/netns.ts";
import { spawnTracked, type TrackedProcess } from "../../src/lab/processes.ts";

export class BenchNet {
  readonly prefix = newLabPrefix();
  private readonly roles = new Map<string, string>();
  private readonly procs = new Set<TrackedProcess>();
  private readonly dirs = new Set<string>();
  private exitHook: (() => void) | undefined;
  private signalHook: ((sig: NodeJS.Signals) => void) | undefined;
  private destroying: Promise<void> | undefined;

  /** Remove stale labs/benches of dead runs, claim the prefix, and arm the teardown hooks. */
  async start(): Promise<this> {
    await cleanupStale();
    await writeOwnerFile(this.prefix);
    this.installHooks();
    return this;
  }

  ns(role: string): string {
    const ns = this.roles.get(role);
    if (!ns) throw new Error(`bench ${this.prefix} has no namespace "${role}"`);
    return ns;
  }

  async addNs(role: string): Promise<string> {
    const ns = netnsName(this.prefix, role);
    this.roles.set(role, ns);
    await addNetns(ns);
    return ns;
  }

  /** `ip -batch` lines run from the root namespace (e.g. veths with both ends placed by `netns`). */
  ipBatchRoot(lines: readonly string[]): Promise<void> {
    return ipBatch(undefined, lines);
  }

  ipBatch(role: string, lines: readonly string[]): Promise<void> {
    return ipBatch(this.ns(role), lines);
  }

  run(role: string, argv: readonly string[], opts: Omit<ExecOptions, "netns"> = {}): Promise<string> {
    return run(argv, { timeoutMs: 30_000, ...opts, netns: this.ns(role) });
  }

  exec(role: string, argv: readonly string[], opts: Omit<ExecOptions, "netns"> = {}): Promise<ExecResult> {
    return exec(argv, { timeoutMs: 30_000, ...opts, netns: this.ns(role) });
  }

  async sysctl(role: string, settings: Record<string, string | number>): Promise<void> {
    const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
    await this.run(role, ["sysctl", "-q", "-w", ...args]);
  }

  spawn(role: string, argv: readonly string[]): TrackedProcess {
    const p = spawnTracked(argv, { netns: this.ns(role) });
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
    return p;
  }

  /** A fresh directory under the system's temp dir, removed by destroy() (config files, state). */
  async tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "nflb-bench-"));
    this.dirs.add(dir);
    return dir;
  }

  /** Stop our processes (by pid), delete every namespace with our prefix and our temp dirs. Idempotent. */
  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      await Promise.all([...this.procs].map((p) => p.stop(1000)));
      await destroyLabPrefix(this.prefix);
      await Promise.all([...this.dirs].map((d) => rm(d, { recursive: true, force: true })));
      this.removeHooks();
    })();
    return this.destroying;
  }

  private installHooks(): void {
    const prefix = this.prefix;
    const roles = this.roles;
    const procs = this.procs;
    const dirs = this.dirs;
    // Last resort when the process exits without destroy(): synchronous, best effort, by pid.
    this.exitHook = () => {
      destroyLabSync(prefix, roles.values(), procs);
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    };
    process.once("exit", this.exitHook);
    this.signalHook = (sig) => {
      process.stderr.write(`\n${sig}: tearing down ${prefix}*\n`);
      void this.destroy().finally(() => process.exit(130));
    };
    process.once("SIGINT", this.signalHook);
    process.once("SIGTERM", this.signalHook);
  }

  private removeHooks(): void {
    if (this.exitHook) process.removeListener("exit", this.exitHook);
    if (this.signalHook) {
      process.removeListener("SIGINT", this.signalHook);
      process.removeListener("SIGTERM", this.signalHook);
    }
    this.exitHook = undefined;
    this.signalHook = undefined;
  }
}

/** Build a BenchNet, run `body`, and tear everything down whatever happens. */
export async function withBenchNet<T>(body: (net: BenchNet) => Promise<T>): Promise<T> {
  const net = new BenchNet();
  try {
    await net.start();
    return await body(net);
  } finally {
    await net.destroy();
  }
}
