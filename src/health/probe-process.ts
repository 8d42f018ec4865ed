import { execFileSync, spawn } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Keep only this much of a helper's stderr, for error messages. */
const STDERR_LIMIT = 4096;
/** The longest unfinished line kept from a helper's stdout. */
const MAX_PARTIAL_LINE = 64 * 1024;

/**
 * A long-lived helper process (fping, `ip monitor`) seen as a stream of stdout lines. Injected so
 * probers and the link watcher run against scripted fakes in unit tests.
 */
export interface LineProcess {
  readonly pid: number | undefined;
  /** Resolves once the process has gone, with its exit code (null when killed by a signal). */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  stderr(): string;
  /** Characters of stderr received so far (the tail above is capped): tells new text from old. */
  stderrTotal?(): number;
  /** Signal the process we started (by its own pid, never by name). */
  kill(signal?: NodeJS.Signals): void;
  /**
   * Present when the output is read on demand (spawnPolledLines): hand every complete line
   * available now to `onLine`, synchronously. Without it, lines arrive as the process prints them.
   */
  poll?(): void;
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
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    buf += d;
    const lines = buf.split("\n");
    buf = lines.pop() ?? "";
    // A line that never ends is not the tool's: drop it rather than grow without bound.
    if (buf.length > MAX_PARTIAL_LINE) buf = "";
    for (const line of lines) onLine(line);
    for (const fn of outputListeners) fn();
  });
  return lineProcess(child);
};

/** The parts of a LineProcess every helper shares: exit, the tail of stderr, kill by our own pid. */
function lineProcess(child: ReturnType<typeof spawn>): LineProcess {
  let err = "";
  let errTotal = 0;
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err = (err + d).slice(-STDERR_LIMIT);
    errTotal += d.length;
  });
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
    stderrTotal: () => errTotal,
    kill: (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/**
 * Like spawnLines, but stdout is read only when `poll()` is called: the process wakes for nothing
 * else. A long-lived fping prints a line per probe; read as it comes, that is a wake-up of the
 * daemon per line. Here its stdout is a FIFO whose read end we hold non-blocking and read with
 * plain read(2) calls at the prober's own wake-ups (the FIFO's name is removed at once; only the
 * two descriptors remain). When no FIFO can be made, this falls back to spawnLines.
 */
export const spawnPolledLines: SpawnLines = (argv, onLine) => {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error("spawnPolledLines: empty argv");
  let ends: { read: number; write: number };
  try {
    ends = openFifo();
  } catch {
    return spawnLines(argv, onLine);
  }
  let readFd: number | undefined = ends.read;
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(cmd, args, { stdio: ["ignore", ends.write, "pipe"] });
  } catch (e) {
    closeSync(ends.read);
    throw e;
  } finally {
    // The child has its own copy; ours would keep the FIFO open after it exits.
    closeSync(ends.write);
  }
  let buf = "";
  const poll = (): void => {
    if (readFd === undefined) return;
    let got = false;
    for (;;) {
      let n: number;
      try {
        n = readSync(readFd, chunk, 0, chunk.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EAGAIN") break;
        throw e;
      }
      if (n === 0) break;
      got = true;
      // fping prints ASCII: latin1 is the cheapest decoding.
      buf += chunk.toString("latin1", 0, n);
      if (n < chunk.length) break;
    }
    if (!got) return;
    const lines = buf.split("\n");
    buf = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  };
  const proc = lineProcess(child);
  void proc.exited.then(() => {
    // Whatever it printed last still counts; then the FIFO is closed for good.
    try {
      poll();
    } finally {
      if (readFd !== undefined) closeSync(readFd);
      readFd = undefined;
    }
  });
  return { ...proc, poll };
};

/** One read buffer for all polled helpers: reads are synchronous and never overlap. */
const chunk = Buffer.alloc(64 * 1024);

function openFifo(): { read: number; write: number } {
  const dir = mkdtempSync(join(tmpdir(), "nflb-helper-"));
  try {
    const path = join(dir, "stdout");
    execFileSync("mkfifo", ["-m", "600", path], { stdio: "ignore" });
    // Non-blocking read end first: opening it does not wait for a writer, and the write end then
    // opens at once because a reader exists.
    const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      return { read, write: openSync(path, constants.O_WRONLY) };
    } catch (e) {
      closeSync(read);
      throw e;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

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
