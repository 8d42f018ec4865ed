import { spawn, type ChildProcess } from "node:child_process";
import type { Socket } from "node:net";
import { wrapNetns } from "../system/exec.ts";

/** Keep only the tail of a child's output: long-running servers must not grow memory without bound. */
const OUTPUT_LIMIT = 64 * 1024;

export interface TrackedProcess {
  readonly pid: number;
  readonly argv: readonly string[];
  readonly child: ChildProcess;
  /** Resolves with the exit code (or 128+signal-ish) once the process has gone. */
  readonly exited: Promise<number>;
  stdout(): string;
  stderr(): string;
  /** Resolve with the first stdout line matching `re`; reject on exit or timeout. */
  waitForLine(re: RegExp, timeoutMs: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  netns?: string;
  env?: NodeJS.ProcessEnv;
}

export function spawnTracked(argv: readonly string[], opts: SpawnOptions = {}): TrackedProcess {
  // `ip netns exec` execs the command in place, so the pid we get is the tool's own pid.
  const full = wrapNetns(argv, opts.netns);
  const [cmd, ...args] = full;
  if (!cmd) throw new Error("spawnTracked: empty argv");
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: opts.env ?? process.env });
  if (child.pid === undefined) throw new Error(`failed to start ${full.join(" ")}`);
  const pid = child.pid;
  // A lab's servers must not keep the test process alive: if destroy() is never called, the
  // process still exits and the lab's exit hook (or the next cleanupStale) removes them.
  // Every wait below holds its own timer, which keeps the loop alive while someone waits.
  child.unref();
  (child.stdout as Socket | null)?.unref();
  (child.stderr as Socket | null)?.unref();
  let out = "";
  let err = "";
  let lineBuf = "";
  const lineWaiters = new Set<(line: string) => void>();
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    out = (out + d).slice(-OUTPUT_LIMIT);
    lineBuf += d;
    const lines = lineBuf.split("\n");
    lineBuf = lines.pop() ?? "";
    for (const line of lines) for (const w of [...lineWaiters]) w(line);
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-OUTPUT_LIMIT)));
  let exitCode: number | undefined;
  const exited = new Promise<number>((resolve) => {
    child.on("error", () => resolve((exitCode = 127)));
    child.on("close", (code, signal) => resolve((exitCode = code ?? (signal ? 128 : 1))));
  });

  const waitForLine = (re: RegExp, timeoutMs: number): Promise<string> =>
    new Promise((resolve, reject) => {
      const fail = (why: string) => {
        cleanup();
        const tail = out.trim().split("\n").slice(-8).join("\n");
        reject(new Error(`${full.join(" ")}: ${why}; stderr: ${err.trim().slice(-2000)}; stdout: ${tail}`));
      };
      const onLine = (line: string) => {
        if (!re.test(line)) return;
        cleanup();
        resolve(line);
      };
      const timer = setTimeout(() => fail(`no line matching ${re} within ${timeoutMs} ms`), timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        lineWaiters.delete(onLine);
      };
      const earlier = out.split("\n").find((l) => re.test(l));
      if (earlier !== undefined) {
        cleanup();
        resolve(earlier);
        return;
      }
      lineWaiters.add(onLine);
      void exited.then((code) => fail(`exited ${code}`));
    });

  const stop = async (graceMs = 1000): Promise<void> => {
    if (exitCode !== undefined) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  };

  return { pid, argv: full, child, exited, stdout: () => out, stderr: () => err, waitForLine, stop };
}

/**
 * The JSON object lines of a lab process's output. Only its last 64 KiB are kept, so after a long
 * run the first line may be cut: lines that do not parse are left out.
 */
export function jsonLines(out: string): Record<string, unknown>[] {
  return out.split("\n").flatMap((l) => {
    if (!l.startsWith("{")) return [];
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}
