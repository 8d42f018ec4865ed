import { test } from "node:test";
import assert from "node:assert/strict";
import { Spawner } from "../../src/system/spawner.ts";
import { exec, run, useSpawner } from "../../src/system/exec.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ready(s: Spawner): Promise<void> {
  // The first call starts it and runs its command directly.
  assert.equal(s.run(["true"], {}), null);
  for (let i = 0; i < 200 && !s.isReady; i++) await sleep(25);
  assert.ok(s.isReady, "the spawner said it is ready");
}

test("spawner: commands with stdin, exit codes and stderr, through exec's viaSpawner", async (t) => {
  const s = new Spawner({ minRssBytes: 0 });
  t.after(() => {
    useSpawner(null);
    s.close();
  });
  await ready(s);
  useSpawner(s);
  const pid = s.pid;
  assert.equal(await run(["cat"], { input: "a line\n", viaSpawner: true }), "a line\n");
  const r = await exec(["sh", "-c", "echo out; echo err >&2; exit 3"], { viaSpawner: true });
  assert.deepEqual(r, { code: 3, stdout: "out\n", stderr: "err\n" });
  await assert.rejects(exec(["/nonexistent/nflb-test"], { viaSpawner: true }), /ENOENT/);
  assert.equal(s.pid, pid, "the same spawner ran every command");
  // Its own process ran them: a child of the spawner, not of this process.
  const ppid = (await run(["sh", "-c", "echo $PPID"], { viaSpawner: true })).trim();
  assert.equal(Number(ppid), pid);
});

test("spawner: a command's timeout holds; a spawner that dies fails its calls, and its callers start their commands themselves", async (t) => {
  const s = new Spawner({ minRssBytes: 0 });
  t.after(() => s.close());
  await ready(s);
  const r = await s.run(["sleep", "5"], { timeoutMs: 200 });
  assert.ok(r && r.code !== 0, "killed at its timeout");
  const inFlight = s.run(["sleep", "5"], {});
  assert.ok(inFlight);
  process.kill(s.pid as number, "SIGKILL");
  await assert.rejects(inFlight, /spawner/);
  assert.equal(s.run(["true"], {}), null, "gone: the caller starts its command itself");
});

test("spawner: not used while this process is small", () => {
  const s = new Spawner({ minRssBytes: Number.MAX_SAFE_INTEGER });
  assert.equal(s.run(["true"], {}), null);
  assert.equal(s.pid, undefined, "never started");
  s.close();
});
