import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  StateLockError,
  acquireStateLock,
  holderAlive,
  processStartTime,
  stateLockPath,
  withStateLock,
} from "../../src/system/lock.ts";

const CHILD = fileURLToPath(new URL("./lock-child.ts", import.meta.url));

async function tmpLock(): Promise<{ dir: string; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), "nflb-lock-"));
  return { dir, path: join(dir, "sub", "netns-1.lock") };
}

function child(args: string[]): { p: ChildProcess; held: Promise<void>; exited: Promise<number | null> } {
  const p = spawn(process.execPath, ["--import", "tsx", CHILD, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const held = new Promise<void>((resolve, reject) => {
    p.stdout?.on("data", (d: Buffer) => d.toString().includes("held") && resolve());
    p.once("exit", (c) => reject(new Error(`child exited ${c} before holding the lock`)));
  });
  held.catch(() => undefined);
  const exited = new Promise<number | null>((r) => p.once("exit", (c) => r(c)));
  return { p, held, exited };
}

test("the lock is created whole, names its holder, and is removed on release", async () => {
  const { dir, path } = await tmpLock();
  const lock = await acquireStateLock("nflb apply", { path });
  const h = JSON.parse(await readFile(path, "utf8")) as { pid: number; start: number; what: string };
  assert.equal(h.pid, process.pid);
  assert.equal(h.start, processStartTime(process.pid));
  assert.equal(h.what, "nflb apply");
  await assert.rejects(acquireStateLock("nflb down", { path, waitMs: 0 }), /already holds/);
  await lock?.release();
  assert.ok(!existsSync(path));
  assert.equal(await withStateLock("nflb down", async () => existsSync(path), { path }), true);
  assert.ok(!existsSync(path), "released after the function");
  await assert.rejects(
    withStateLock("nflb down", async () => Promise.reject(new Error("boom")), { path }),
    /boom/,
  );
  assert.ok(!existsSync(path), "released after a failure too");
  await rm(dir, { recursive: true });
});

test("while the daemon holds it, apply fails at once naming its pid; exec runs as its guest", async () => {
  const { dir, path } = await tmpLock();
  const c = child(["hold", path, "nflb run", "20000"]);
  try {
    await c.held;
    const t0 = Date.now();
    await assert.rejects(acquireStateLock("nflb apply", { path, waitMs: 5000 }), (e: unknown) => {
      assert.ok(e instanceof StateLockError);
      assert.match(e.message, new RegExp(`nflb run \\(pid ${c.p.pid}, since `));
      assert.match(e.message, /nflb reload/);
      assert.match(e.message, /stop the daemon/);
      return true;
    });
    assert.ok(Date.now() - t0 < 1000, "no waiting for a daemon");
    await assert.rejects(acquireStateLock("nflb run", { path }), /one daemon per namespace/);
    assert.equal(await withStateLock("nflb exec", async () => "ran", { path, guestOfDaemon: true }), "ran");
    assert.ok(existsSync(path), "the guest left the daemon's lock alone");
  } finally {
    c.p.kill("SIGKILL");
    await c.exited;
  }
  await rm(dir, { recursive: true });
});

test("a second apply waits a bounded time for the first, then fails clearly; or gets it when the first ends", async () => {
  const { dir, path } = await tmpLock();
  const c = child(["hold", path, "nflb apply", "1500"]);
  await c.held;
  const t0 = Date.now();
  await assert.rejects(
    acquireStateLock("nflb apply", { path, waitMs: 300 }),
    /nflb apply \(pid \d+, since .*\) still holds .* after 0\.\d s; nflb apply waits for no longer/,
  );
  assert.ok(Date.now() - t0 >= 300);
  const lock = await acquireStateLock("nflb apply", { path, waitMs: 10_000 });
  assert.ok(Date.now() - t0 >= 1000, "got it only once the first one finished");
  assert.equal(await c.exited, 0);
  await lock?.release();
  await rm(dir, { recursive: true });
});

test("a lock left by a kill -9, or by a pid now used by another process, is stale", async () => {
  const { dir, path } = await tmpLock();
  const c = child(["hold", path, "nflb apply", "60000"]);
  await c.held;
  c.p.kill("SIGKILL");
  await c.exited;
  const lock = await acquireStateLock("nflb down", { path, waitMs: 0 });
  assert.ok(lock);
  await lock.release();
  // Our parent is alive, but did not start at that time: a reused pid.
  const reused = { pid: process.ppid, start: 1, what: "nflb run", since: "then" };
  assert.ok(!holderAlive(reused));
  assert.ok(holderAlive({ ...reused, start: processStartTime(process.ppid) ?? null }));
  await writeFile(path, JSON.stringify(reused));
  const again = await acquireStateLock("nflb apply", { path, waitMs: 0 });
  assert.ok(again);
  await again.release();
  await rm(dir, { recursive: true });
});

test("processes contending for it never overlap", { timeout: 60_000 }, async () => {
  const { dir, path } = await tmpLock();
  const counter = join(dir, "count");
  await writeFile(counter, "0");
  const kids = [1, 2, 3].map(() => child(["count", path, counter, "8"]));
  assert.deepEqual(await Promise.all(kids.map((k) => k.exited)), [0, 0, 0]);
  assert.equal(await readFile(counter, "utf8"), "24", "every read-sleep-write ran alone");
  assert.ok(!existsSync(path));
  await rm(dir, { recursive: true });
});

test("the lock sits next to this namespace's state file", async () => {
  const old = process.env.NFLB_STATE_DIR;
  process.env.NFLB_STATE_DIR = "/tmp/nflb-x";
  try {
    assert.match(await stateLockPath(), /^\/tmp\/nflb-x\/netns-\d+\.lock$/);
  } finally {
    if (old === undefined) delete process.env.NFLB_STATE_DIR;
    else process.env.NFLB_STATE_DIR = old;
  }
});
