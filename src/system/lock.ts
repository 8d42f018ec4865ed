import { readFileSync, unlinkSync } from "node:fs";
import { link, mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { removeLeftovers, stateFilePath } from "./state.ts";

/**
 * One lock for every process that changes nflb's state in a network namespace: the daemon (for
 * its whole life), `nflb apply`, `nflb down` and `nflb exec` (while they run). Without it, an
 * apply while the daemon runs silently puts back the all-healthy split, and two overlapping
 * applies delete each other's rules.
 *
 * The lock is a file next to the state file, created whole and atomically (written to a private
 * name, then hard-linked into place: link fails if the name exists). It records who holds it; a
 * holder that is gone (kill -9, crash) is recognised by its pid and the process start time, so a
 * pid reused by another process does not keep the lock alive.
 */

export interface LockHolder {
  pid: number;
  /** Process start time in clock ticks (/proc/PID/stat field 22): tells a reused pid apart. */
  start: number | null;
  /** What holds it, for the message another process prints: "nflb run", "nflb apply"… */
  what: string;
  since: string;
}

export const DAEMON = "nflb run";

export class StateLockError extends Error {
  override name = "StateLockError";
  constructor(
    message: string,
    readonly holder: LockHolder | null,
  ) {
    super(message);
  }
}

export interface LockOptions {
  /** How long to wait for a short-lived holder (an apply, a down) to finish. */
  waitMs?: number;
  pollMs?: number;
  /** The lock file; by default next to this namespace's state file. */
  path?: string;
  /**
   * When the daemon holds the lock, run anyway without it: for `nflb exec`, which only adds an
   * element to the daemon's own table and is meant to run beside it.
   */
  guestOfDaemon?: boolean;
}

export const DEFAULT_WAIT_MS = 10_000;

export async function stateLockPath(): Promise<string> {
  return (await stateFilePath()).replace(/\.json$/, ".lock");
}

/** Process start time in clock ticks, or undefined when the process is gone. */
export function processStartTime(pid: number): number | undefined {
  const f = procStat(pid);
  const value = Number(f?.[19]);
  return f && Number.isFinite(value) ? value : undefined;
}

/** /proc/PID/stat from field 3 on (the command name, field 2, may hold spaces and parentheses). */
function procStat(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** Is the recorded holder still that same process? A zombie (killed, not yet reaped) is gone. */
export function holderAlive(h: LockHolder): boolean {
  const f = procStat(h.pid);
  if (!f) return false;
  if (f[0] === "Z" || f[0] === "X") return false;
  return h.start === null || Number(f[19]) === h.start;
}

function parseHolder(text: string): LockHolder | null {
  try {
    const o = JSON.parse(text) as Partial<LockHolder>;
    if (typeof o.pid !== "number" || !Number.isInteger(o.pid) || o.pid <= 0) return null;
    return {
      pid: o.pid,
      start: typeof o.start === "number" ? o.start : null,
      what: typeof o.what === "string" ? o.what.slice(0, 64) : "nflb",
      since: typeof o.since === "string" ? o.since.slice(0, 40) : "?",
    };
  } catch {
    return null;
  }
}

async function readHolder(path: string): Promise<{ text: string; holder: LockHolder | null } | null> {
  try {
    const text = await readFile(path, "utf8");
    return { text, holder: parseHolder(text) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** Create `path` with `text`, whole, or fail with EEXIST. */
async function createWhole(path: string, text: string): Promise<boolean> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, text, { mode: 0o644 });
  try {
    await link(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Remove a lock whose holder is gone. Two processes may find the same stale lock: only the one
 * that takes the `.break` file removes it, after checking it is still the stale one (not a fresh
 * lock the other just created).
 */
async function breakStale(path: string, staleText: string): Promise<void> {
  const breaker = `${path}.break`;
  const me = JSON.stringify({
    pid: process.pid,
    start: processStartTime(process.pid) ?? null,
    what: "break",
  });
  if (!(await createWhole(breaker, me))) {
    const b = await readHolder(breaker);
    // A breaker killed in its few instructions: remove its file, and try again next round.
    if (b && (!b.holder || !holderAlive(b.holder))) await unlink(breaker).catch(() => undefined);
    return;
  }
  try {
    const now = await readHolder(path);
    if (now?.text === staleText) await unlink(path).catch(() => undefined);
  } finally {
    await unlink(breaker).catch(() => undefined);
  }
}

export function describeHolder(h: LockHolder): string {
  return `${h.what} (pid ${h.pid}, since ${h.since})`;
}

function busyMessage(h: LockHolder | null, what: string, path: string, waitedMs: number): string {
  if (!h) return `${path} is held by a process nflb cannot identify (remove the file if no nflb runs)`;
  if (h.what === DAEMON)
    return (
      `${describeHolder(h)} owns nflb's data plane in this network namespace, so ${what} would undo its work: ` +
      (what === DAEMON
        ? "stop it first (one daemon per namespace)"
        : "use `nflb reload` to apply a changed config, or stop the daemon first")
    );
  return (
    `${describeHolder(h)} still holds ${path} after ${(waitedMs / 1000).toFixed(1)} s; ` +
    `${what} waits for no longer: try again when it has finished`
  );
}

export class StateLock {
  private released = false;
  private readonly onExit = () => this.releaseSync();

  constructor(
    readonly path: string,
    private readonly text: string,
  ) {
    // A process that ends without releasing (process.exit in the daemon's signal handler) still does.
    process.on("exit", this.onExit);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    process.off("exit", this.onExit);
    const now = await readHolder(this.path).catch(() => null);
    // Only our own: never a lock another process took after ours was (wrongly) judged stale.
    if (now?.text === this.text) await unlink(this.path).catch(() => undefined);
  }

  private releaseSync(): void {
    if (this.released) return;
    this.released = true;
    try {
      if (readFileSync(this.path, "utf8") === this.text) unlinkSync(this.path);
    } catch {
      // Gone already.
    }
  }
}

/**
 * Take the state lock for `what`, waiting up to `waitMs` for another short-lived holder. Fails at
 * once when the daemon holds it (it holds it until it stops). Returns null only with
 * `guestOfDaemon`, when the daemon holds it.
 */
export async function acquireStateLock(what: string, opts: LockOptions = {}): Promise<StateLock | null> {
  const path = opts.path ?? (await stateLockPath());
  const waitMs = opts.waitMs ?? DEFAULT_WAIT_MS;
  const pollMs = opts.pollMs ?? 100;
  await mkdir(path.slice(0, path.lastIndexOf("/")) || "/", { recursive: true });
  const me: LockHolder = {
    pid: process.pid,
    start: processStartTime(process.pid) ?? null,
    what,
    since: new Date().toISOString(),
  };
  const text = JSON.stringify(me) + "\n";
  const t0 = Date.now();
  let unreadable = 0;
  for (;;) {
    if (await createWhole(path, text)) {
      const lock = new StateLock(path, text);
      const dir = path.slice(0, path.lastIndexOf("/"));
      await removeLeftovers(dir, `${path.slice(dir.length + 1)}.`);
      return lock;
    }
    const cur = await readHolder(path);
    if (!cur) continue; // released between our link and our read
    const h = cur.holder;
    if (h && !holderAlive(h)) {
      await breakStale(path, cur.text);
      continue;
    }
    if (!h && ++unreadable * pollMs > 2000) {
      // Not ours to judge for long: an unparsable lock is broken only after 2 s (not a write in progress).
      await breakStale(path, cur.text);
      unreadable = 0;
      continue;
    }
    if (h?.pid === process.pid) throw new StateLockError(`${what}: this process already holds ${path}`, h);
    if (h?.what === DAEMON && opts.guestOfDaemon) return null;
    if (h?.what === DAEMON || Date.now() - t0 >= waitMs)
      throw new StateLockError(busyMessage(h, what, path, Date.now() - t0), h);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Run `fn` holding the state lock (see acquireStateLock); released however `fn` ends. */
export async function withStateLock<T>(
  what: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const lock = await acquireStateLock(what, opts);
  try {
    return await fn();
  } finally {
    await lock?.release();
  }
}

/** Take the lock for the rest of this process's life (the daemon); released when it exits. */
export async function holdStateLock(what: string = DAEMON, opts: LockOptions = {}): Promise<void> {
  await acquireStateLock(what, { ...opts, waitMs: opts.waitMs ?? DEFAULT_WAIT_MS });
}
