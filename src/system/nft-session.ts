import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NftError } from "./nft.ts";

/**
 * One long-lived `nft -i` for the daemon's in-place transactions. An `nft -f` that deletes anything
 * (a rule of a `flush chain`, a map element) waits when it closes its netlink socket: the kernel
 * then flushes nf_tables' destroy work, an RCU grace period (nft_rcv_nl_event → __flush_work,
 * 10–20 ms on this machine), and the exec and loading of nft cost ~2 ms more. A session that
 * stays open pays neither (bench/RESULTS.md, issue 11 stop 21).
 *
 * Each transaction is a script file the session `include`s: one command line, so one batch, as
 * atomic as `nft -f` (which reads its file the same way). nft answers nothing on success; the end
 * of a transaction's answer is a marker line that nft rejects as a syntax error before touching
 * the kernel, echoed on stderr after whatever the transaction wrote there. Anything before the
 * marker's error is the transaction's error: nothing was changed.
 *
 * When the session cannot start, `apply` returns false and the caller runs `nft -f` itself. When
 * it dies or times out during a transaction, the outcome is unknown: `apply` throws (the
 * reconciler then replaces the table) and the next call starts a new session.
 */
export class NftSession {
  private proc: ChildProcess | null = null;
  private dir: string | null = null;
  private stderr = "";
  private seq = 0;
  private waiting: { marker: string; done: (err: string | null) => void } | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private failedAt = -Infinity;

  constructor(
    private readonly opts: {
      /** The argv of the session (`nft -i`, or a wrapper that runs it in a namespace). */
      argv?: readonly string[];
      timeoutMs?: number;
      /** After a failure, `nft -f` is used for this long before a new session is tried. */
      retryMs?: number;
    } = {},
  ) {}

  /** Apply `script` as one transaction; false when no session is available (run `nft -f`). */
  apply(script: string): Promise<boolean> {
    const p = this.queue.then(() => this.applyNow(script));
    this.queue = p.catch(() => undefined);
    return p;
  }

  /**
   * Start the session now rather than at the first transaction: starting a child copies the
   * parent's page tables, cheap while the daemon is small, 5–18 ms once it holds 5,000 services.
   */
  start(): void {
    this.ensure();
  }

  /** Ends the session (a later `apply` starts another). */
  close(): void {
    this.stop();
  }

  private async applyNow(script: string): Promise<boolean> {
    const proc = this.ensure();
    if (!proc || !this.dir) return false;
    const n = ++this.seq;
    const file = join(this.dir, `t${n}.nft`);
    writeFileSync(file, script, { mode: 0o600 });
    const marker = `nflb_done_${n}`;
    try {
      const err = await new Promise<string | null>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.waiting = null;
          this.fail();
          reject(new Error("nft -i did not answer in time; the outcome of the transaction is unknown"));
        }, this.opts.timeoutMs ?? 60_000);
        this.waiting = {
          marker,
          done: (e) => {
            clearTimeout(timer);
            if (e === null) reject(new Error("nft -i ended during a transaction; its outcome is unknown"));
            else resolve(e);
          },
        };
        proc.stdin?.write(`include "${file}"\n${marker}\n`);
      });
      // nft reports a failed batch with "Error:" lines; anything else on stderr (a warning) is not
      // a failure, as `nft -f` exits 0 with it.
      if (err && /\bError\b/.test(err))
        throw new NftError(`nft rejected the transaction (nothing was changed):\n${err}`, err);
      return true;
    } finally {
      try {
        unlinkSync(file);
      } catch {
        // the session's directory may be gone with it
      }
    }
  }

  private ensure(): ChildProcess | null {
    if (this.proc) return this.proc;
    if (performance.now() - this.failedAt < (this.opts.retryMs ?? 30_000)) return null;
    const [cmd, ...args] = this.opts.argv ?? ["nft", "-i"];
    let proc: ChildProcess;
    try {
      this.dir = mkdtempSync(join(tmpdir(), "nflb-nft-"));
      // The path goes into an `include "…"` line: one that cannot be written there gets no session.
      if (/["\n\r\\]/.test(this.dir)) throw new Error("unquotable temporary directory");
      proc = spawn(cmd as string, args, { stdio: ["pipe", "ignore", "pipe"] });
    } catch {
      this.fail();
      return null;
    }
    this.proc = proc;
    this.stderr = "";
    proc.unref();
    proc.on("error", () => this.fail(proc));
    proc.on("exit", () => this.fail(proc));
    proc.stdin?.on("error", () => this.fail(proc));
    proc.stderr?.setEncoding("utf8").on("data", (d: string) => this.onStderr(d));
    // Neither the session nor its pipes keep the daemon alive: its stdin closing at exit ends it.
    (proc.stderr as { unref?: () => void } | null)?.unref?.();
    (proc.stdin as { unref?: () => void } | null)?.unref?.();
    return proc;
  }

  private onStderr(d: string): void {
    this.stderr += d;
    const w = this.waiting;
    if (!w) {
      // Nothing asked: keep only a bounded tail (it belongs to no transaction).
      if (this.stderr.length > 65_536) this.stderr = this.stderr.slice(-65_536);
      return;
    }
    // The marker's error: "Error: syntax error, …\nnflb_done_N\n   ^\n".
    const at = this.stderr.indexOf(`\n${w.marker}\n`);
    if (at < 0) return;
    const end = this.stderr.indexOf("\n", at + w.marker.length + 2);
    if (end < 0) return;
    const head = this.stderr.lastIndexOf("Error:", at);
    const own = this.stderr.slice(0, head < 0 ? at : head).trim();
    this.stderr = this.stderr.slice(end + 1);
    this.waiting = null;
    w.done(own);
  }

  /** The session is gone (or must go): a transaction waiting on it has an unknown outcome. */
  private fail(proc?: ChildProcess): void {
    if (proc && proc !== this.proc) return;
    this.failedAt = performance.now();
    this.stop();
    const w = this.waiting;
    this.waiting = null;
    w?.done(null);
  }

  private stop(): void {
    const proc = this.proc;
    this.proc = null;
    if (proc) {
      proc.stdin?.end();
      if (proc.exitCode === null) proc.kill("SIGTERM");
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}
