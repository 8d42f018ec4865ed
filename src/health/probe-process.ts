import { spawn } from "node:child_process";

/** Keep only this much of a helper's stderr, for error messages. */
const STDERR_LIMIT = 4096;

/**
 * A long-lived helper process (fping, `ip monitor`) seen as a stream of stdout lines. Injected so
 * probers and the link watcher run against scripted fakes in unit tests.
 */
export interface LineProcess {
  readonly pid: number | undefined;
  /** Resolves once the process has gone, with its exit code (null when killed by a signal). */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  stderr(): string;
  /** Signal the process we started (by its own pid, never by name). */
  kill(signal?: NodeJS.Signals): void;
}

export type SpawnLines = (argv: readonly string[], onLine: (line: string) => void) => LineProcess;

const outputListeners = new Set<() => void>();

/**
 * Call `fn` after each chunk of any helper's output has been handled: a moment the process is
 * awake anyway (fping prints every round). Periodic work that is cheap but frequent (the link
 * watcher's carrier check) rides on it instead of waking the process with a timer of its own.
 * Returns the unsubscribe.
 */
export function onHelperOutput(fn: () => void): () => void {
  outputListeners.add(fn);
  return () => void outputListeners.delete(fn);
}

/** The real thing: `child_process.spawn` with an argument array, no shell. */
export const spawnLines: SpawnLines = (argv, onLine) => {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error("spawnLines: empty argv");
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let buf = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    buf += d;
    const lines = buf.split("\n");
    buf = lines.pop() ?? "";
    for (const line of lines) onLine(line);
    for (const fn of outputListeners) fn();
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err = (err + d).slice(-STDERR_LIMIT)));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.on("error", (e) => {
      err = (err + e.message).slice(-STDERR_LIMIT);
      resolve({ code: 127, signal: null });
    });
    child.on("close", (code, signal) => resolve({ code, signal }));
  });
  return {
    pid: child.pid,
    exited,
    stderr: () => err,
    kill: (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
};

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(p: LineProcess, graceMs = 1000): Promise<void> {
  let gone = false;
  void p.exited.then(() => (gone = true));
  p.kill("SIGTERM");
  const timer = setTimeout(() => {
    if (!gone) p.kill("SIGKILL");
  }, graceMs);
  timer.unref();
  await p.exited;
  clearTimeout(timer);
}

/** "exited 4: fping: cannot bind source address" — for reasons and logs. */
export function describeExit(e: { code: number | null; signal: string | null }, stderr: string): string {
  const how = e.signal ? `killed by ${e.signal}` : `exited ${e.code}`;
  const last = stderr.trim().split("\n").pop()?.trim();
  return last ? `${how}: ${last}` : how;
}
