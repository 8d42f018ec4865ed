import { spawn } from "node:child_process";
import { closeSync, fstatSync, mkdtempSync, openSync, readSync, rmdirSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
  /**
   * Let the command write its stdout into a file (unlinked at once: nothing is left behind) rather
   * than a pipe, read when it exits: a command that prints a lot then never waits for this
   * process's event loop, busy with other work meanwhile, to drain a 64 KiB pipe. With
   * `maxStdout` (bytes here), a bigger output is not read and the result says `truncated`.
   */
  stdoutToFile?: boolean;
  /**
   * A command with small output that a big daemon runs often (`nft -f` of an update, the `ip`
   * read of the interfaces): started by the spawner when one is installed and wants it
   * (src/system/spawner.ts), else here.
   */
  viaSpawner?: boolean;
}

/** The daemon's spawner, when it installed one (useSpawner). */
let spawner: { run(argv: readonly string[], o: ExecOptions): Promise<ExecResult> | null } | null = null;

/** Route `viaSpawner` commands through `s` (null: start them here again). */
export function useSpawner(s: typeof spawner): void {
  spawner = s;
}

/** A private file with no name (its directory and name removed at once), open for read and write. */
function anonymousFile(): number {
  const dir = mkdtempSync(join(tmpdir(), "nflb-out-"));
  const path = join(dir, "out");
  const fd = openSync(path, "w+", 0o600);
  unlinkSync(path);
  rmdirSync(dir);
  return fd;
}

function readWhole(fd: number, max: number): { text: string; truncated: boolean } {
  const size = fstatSync(fd).size;
  if (size > max) return { text: "", truncated: true };
  const buf = Buffer.alloc(size);
  let off = 0;
  while (off < size) {
    const n = readSync(fd, buf, off, size - off, off);
    if (n <= 0) break;
    off += n;
  }
  return { text: buf.subarray(0, off).toString("utf8"), truncated: false };
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
  if (
    opts.viaSpawner &&
    spawner &&
    !opts.stdoutToFile &&
    opts.env === undefined &&
    opts.maxStdout === undefined
  ) {
    const viaSpawner = spawner.run(full, opts);
    if (viaSpawner) return viaSpawner;
  }
  const file = opts.stdoutToFile ? anonymousFile() : undefined;
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(cmd, args, {
        stdio: ["pipe", file ?? "pipe", "pipe"],
        env: opts.env ?? process.env,
        timeout: opts.timeoutMs ?? 30_000,
        killSignal: opts.killSignal ?? "SIGTERM",
      });
    } catch (e) {
      if (file !== undefined) closeSync(file);
      throw e;
    }
    let stdout = "";
    let stderr = "";
    let truncated = false;
    const max = opts.maxStdout ?? Infinity;
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      if (truncated) return;
      stdout += d;
      if (stdout.length > max) {
        truncated = true;
        child.kill("SIGKILL");
      }
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    let open = file !== undefined;
    const release = () => {
      if (open && file !== undefined) closeSync(file);
      open = false;
    };
    child.on("error", (e) => {
      release();
      reject(e);
    });
    child.on("close", (code, signal) => {
      if (open && file !== undefined) {
        try {
          ({ text: stdout, truncated } = readWhole(file, max));
        } finally {
          release();
        }
      }
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, ...(truncated ? { truncated } : {}) });
    });
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(opts.input ?? "");
  });
}

/** Run a command and throw ExecError unless it exits 0. */
export async function run(argv: readonly string[], opts: ExecOptions = {}): Promise<string> {
  const result = await exec(argv, opts);
  if (result.code !== 0) throw new ExecError(wrapNetns(argv, opts.netns), result);
  return result.stdout;
}
