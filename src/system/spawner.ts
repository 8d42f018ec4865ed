import { spawn, type ChildProcess } from "node:child_process";
import type { ExecOptions, ExecResult } from "./exec.ts";

/**
 * A small long-lived Node process that starts commands for a big one. libuv starts a child with
 * fork(), which copies the parent's page tables: from a daemon holding 5,000 services × 50
 * backends (~600 MB RSS) each `nft -f` or `ip` paid 5–18 ms in the spawn call alone, blocking
 * the event loop, against ~1–2 ms from a 50 MB process (bench/RESULTS.md, issue 11). This process
 * stays small: it is started only once the daemon is big (RSS over `minRssBytes`), gets requests
 * as JSON lines (an argv array, never a shell string; stdin text; a timeout) and answers each
 * with the exit code and output, bounded. It exits when its stdin closes (the daemon is gone).
 * Until it is ready, and whenever it is gone (restarted at the next call, at most every
 * RESTART_MS), callers start their commands themselves as before.
 */
const CHILD = String.raw`
const { spawn } = require("node:child_process");
const MAX = Number(process.argv[1]);
const reply = (o) => process.stdout.write(JSON.stringify(o) + "\n");
let buf = "";
process.stdin.setEncoding("utf8");
process.stdin.on("end", () => process.exit(0));
process.stdin.on("data", (d) => {
  buf += d;
  for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    run(line);
  }
  if (buf.length > MAX) process.exit(3);
});
function run(line) {
  let r;
  try { r = JSON.parse(line); } catch { process.exit(4); }
  const { id, argv, input, timeoutMs, killSignal } = r;
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === "string"))
    return reply({ id, error: "argv must be a non-empty array of strings" });
  let out = "", err = "", truncated = false, done = false, child;
  try {
    child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], timeout: timeoutMs, killSignal });
  } catch (e) {
    return reply({ id, error: String(e && e.message), errno: e && e.code });
  }
  child.stdout.setEncoding("utf8").on("data", (d) => {
    if (truncated) return;
    out += d;
    if (out.length > MAX) { truncated = true; out = ""; child.kill("SIGKILL"); }
  });
  child.stderr.setEncoding("utf8").on("data", (d) => { if (err.length < 65536) err += d; });
  child.on("error", (e) => { if (!done) { done = true; reply({ id, error: e.message, errno: e.code }); } });
  child.on("close", (code, signal) => {
    if (done) return;
    done = true;
    reply({ id, code: code ?? (signal ? 128 : 1), stdout: out, stderr: err, truncated });
  });
  child.stdin.on("error", () => {});
  child.stdin.end(typeof input === "string" ? input : "");
}
reply({ ready: true });
`;

/** Output of one command, at most (UTF-16 units): more kills it and the answer says `truncated`. */
const MAX_OUTPUT = 32 << 20;
/** The spawner's answer may come this much later than the command's own timeout. */
const GRACE_MS = 5000;
const RESTART_MS = 5000;

interface Pending {
  resolve: (r: ExecResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface Answer {
  id?: number;
  ready?: boolean;
  code?: number;
  stdout?: string;
  stderr?: string;
  truncated?: boolean;
  error?: string;
  errno?: string;
}

export class Spawner {
  private child: ChildProcess | null = null;
  private ready = false;
  private closed = false;
  private lastStart = -Infinity;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(
    private readonly opts: {
      /** Used only while this process's RSS is above this (0: always). */
      minRssBytes: number;
      log?: (msg: string) => void;
    },
  ) {}

  /**
   * The command run by the spawner, or null when the caller should start it itself (the spawner
   * is not wanted, not ready yet, or gone; a call that finds it missing starts it).
   */
  run(argv: readonly string[], o: ExecOptions): Promise<ExecResult> | null {
    if (this.closed) return null;
    if (this.opts.minRssBytes > 0 && process.memoryUsage.rss() < this.opts.minRssBytes) return null;
    if (!this.child) {
      this.start();
      return null;
    }
    if (!this.ready) return null;
    const child = this.child;
    const id = this.nextId++;
    const timeoutMs = o.timeoutMs ?? 30_000;
    return new Promise<ExecResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        // It stopped answering: start over (the command itself was given timeoutMs).
        this.pending.delete(id);
        reject(new Error(`spawner: no answer for ${argv[0] ?? ""} within ${timeoutMs + GRACE_MS} ms`));
        this.kill(child);
      }, timeoutMs + GRACE_MS);
      this.pending.set(id, { resolve, reject, timer });
      const request = {
        id,
        argv,
        input: o.input ?? "",
        timeoutMs,
        killSignal: o.killSignal ?? "SIGTERM",
      };
      child.stdin?.write(JSON.stringify(request) + "\n");
    });
  }

  /** Stop the spawner (by its own pid); commands in flight are answered with an error. */
  close(): void {
    this.closed = true;
    if (this.child) this.kill(this.child);
  }

  /** Test hook: the spawner's pid while it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get isReady(): boolean {
    return this.ready;
  }

  private start(): void {
    const now = performance.now();
    if (now - this.lastStart < RESTART_MS) return;
    this.lastStart = now;
    let child: ChildProcess;
    try {
      child = spawn(
        process.execPath,
        ["--max-old-space-size=128", "--max-semi-space-size=1", "-e", CHILD, String(MAX_OUTPUT)],
        { stdio: ["pipe", "pipe", "pipe"] },
      );
    } catch (e) {
      this.opts.log?.(`spawner could not start: ${(e as Error).message}`);
      return;
    }
    this.child = child;
    this.ready = false;
    let buf = "";
    let err = "";
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-2000)));
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      buf += d;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.answer(line);
      }
    });
    child.stdin?.on("error", () => undefined);
    child.on("error", (e) => this.gone(child, e.message));
    child.on("close", (code, signal) =>
      this.gone(child, `exited ${code ?? signal}${err ? `: ${err.trim()}` : ""}`),
    );
  }

  private answer(line: string): void {
    let a: Answer;
    try {
      a = JSON.parse(line) as Answer;
    } catch {
      return;
    }
    if (a.ready) {
      this.ready = true;
      return;
    }
    if (typeof a.id !== "number") return;
    const p = this.pending.get(a.id);
    if (!p) return;
    this.pending.delete(a.id);
    clearTimeout(p.timer);
    if (a.error !== undefined) {
      const e = new Error(a.error) as NodeJS.ErrnoException;
      if (a.errno) e.code = a.errno;
      p.reject(e);
      return;
    }
    p.resolve({
      code: a.code ?? 1,
      stdout: a.stdout ?? "",
      stderr: a.stderr ?? "",
      ...(a.truncated ? { truncated: true } : {}),
    });
  }

  private gone(child: ChildProcess, why: string): void {
    if (this.child !== child) return;
    this.child = null;
    this.ready = false;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`spawner ${why}`));
      this.pending.delete(id);
    }
    if (!this.closed) this.opts.log?.(`spawner ${why}; commands start directly until it is back`);
  }

  private kill(child: ChildProcess): void {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
  }
}
