import { spawn } from "node:child_process";

/** Result of a finished command. Commands are always argument arrays: no shell is involved anywhere. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Killed for printing more than `maxStdout`: `stdout` is incomplete. */
  truncated?: boolean;
}

export interface ExecOptions {
  input?: string;
  /** Run inside this network namespace (`ip netns exec NS …`). */
  netns?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Signal sent when `timeoutMs` runs out (default SIGTERM). */
  killSignal?: NodeJS.Signals;
  /** More stdout than this (UTF-16 units) kills the command (SIGKILL); the result says `truncated`. */
  maxStdout?: number;
}

export class ExecError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: ExecResult,
  ) {
    super(`${argv.join(" ")} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`);
    this.name = "ExecError";
  }
}

/** The argv actually executed, with the namespace wrapper applied. */
export function wrapNetns(argv: readonly string[], netns?: string): string[] {
  return netns ? ["ip", "netns", "exec", netns, ...argv] : [...argv];
}

/** Run a command and collect its output; never throws for a non-zero exit (see `run`). */
export function exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const full = wrapNetns(argv, opts.netns);
  const [cmd, ...args] = full;
  if (!cmd) throw new Error("exec: empty argv");
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: opts.env ?? process.env,
      timeout: opts.timeoutMs ?? 30_000,
      killSignal: opts.killSignal ?? "SIGTERM",
    });
    let stdout = "";
    let stderr = "";
    let truncated = false;
    const max = opts.maxStdout ?? Infinity;
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      if (truncated) return;
      stdout += d;
      if (stdout.length > max) {
        truncated = true;
        child.kill("SIGKILL");
      }
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code, signal) =>
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, ...(truncated ? { truncated } : {}) }),
    );
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/** Run a command and throw ExecError unless it exits 0. */
export async function run(argv: readonly string[], opts: ExecOptions = {}): Promise<string> {
  const result = await exec(argv, opts);
  if (result.code !== 0) throw new ExecError(wrapNetns(argv, opts.netns), result);
  return result.stdout;
}
