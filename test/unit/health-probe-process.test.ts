import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  describeExit,
  onHelperOutput,
  spawnLines,
  spawnPolledLines,
} from "../../src/health/probe-process.ts";
import { until } from "../../testkit/until.ts";

test("spawnLines: stdout as lines; helper-output listeners run after the lines of a chunk", async () => {
  const seen: string[] = [];
  const unsubscribe = onHelperOutput(() => seen.push("awake"));
  const p = spawnLines(["printf", "one\\ntwo\\n"], (line) => seen.push(line));
  assert.deepEqual(await p.exited, { code: 0, signal: null });
  unsubscribe();
  assert.deepEqual(seen.slice(0, 2), ["one", "two"]);
  assert.equal(seen.at(-1), "awake");
  const after = seen.length;
  await spawnLines(["printf", "three\\n"], () => {}).exited;
  assert.equal(seen.length, after, "unsubscribed");
});

test("spawnLines: a command that cannot start exits 127 with the reason", async () => {
  const p = spawnLines(["/nonexistent/nflb-helper"], () => {});
  const e = await p.exited;
  assert.equal(e.code, 127);
  assert.match(describeExit(e, p.stderr()), /^exited 127: .*ENOENT/);
});

test("spawnPolledLines: lines only when polled, the last ones at exit; the FIFO leaves no file behind", async () => {
  // A private TMPDIR: other test processes on the machine make and remove FIFO folders of their own.
  const savedTmp = process.env.TMPDIR;
  const tmp = mkdtempSync(join(tmpdir(), "nflb-test-"));
  process.env.TMPDIR = tmp;
  try {
    const seen: string[] = [];
    // The helper writes two lines (synchronously, then says so on stderr) and stays running until
    // told to go on: then it writes two more, the last one unfinished, and exits. Each step waits
    // for the other side, so a slow start or a late timer on a loaded machine changes nothing.
    const script = [
      `const fs = require("node:fs");`,
      `process.on("SIGUSR1", () => { fs.writeSync(1, "three\\nfour"); process.exit(0); });`,
      `setTimeout(() => process.exit(3), 120_000);`,
      `fs.writeSync(1, "one\\ntwo\\n");`,
      `fs.writeSync(2, "written\\n");`,
    ].join("\n");
    const p = spawnPolledLines([process.execPath, "-e", script], (l) => seen.push(l));
    assert.ok(p.poll, "read on demand");
    assert.deepEqual(readdirSync(tmp), [], "the FIFO's name is gone at once");
    try {
      await until("the helper to write its first lines", () => p.stderr().includes("written"));
      assert.deepEqual(seen, [], "nothing is read behind the prober's back");
      p.poll();
      assert.deepEqual(seen, ["one", "two"]);
      p.poll();
      assert.deepEqual(seen, ["one", "two"], "nothing new, nothing read");
      p.kill("SIGUSR1");
      assert.deepEqual(await p.exited, { code: 0, signal: null });
    } finally {
      p.kill("SIGKILL");
    }
    assert.deepEqual(seen, ["one", "two", "three"], "what it printed before exiting still arrives");
    p.poll();
    assert.equal(seen.length, 3);
  } finally {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("spawnPolledLines: a command that cannot start exits 127 with the reason", async () => {
  const p = spawnPolledLines(["/nonexistent/nflb-helper"], () => {});
  const e = await p.exited;
  assert.equal(e.code, 127);
  assert.match(describeExit(e, p.stderr()), /^exited 127: .*ENOENT/);
});
