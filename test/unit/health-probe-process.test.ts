import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import {
  describeExit,
  onHelperOutput,
  spawnLines,
  spawnPolledLines,
} from "../../src/health/probe-process.ts";

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
  const fifos = () => readdirSync(tmpdir()).filter((n) => n.startsWith("nflb-helper-")).length;
  const before = fifos();
  const seen: string[] = [];
  // The helper writes two lines, waits (still running), then two more, the last one unfinished.
  const script = `process.stdout.write("one\\ntwo\\n"); setTimeout(() => process.stdout.write("three\\nfour"), 300);`;
  const p = spawnPolledLines([process.execPath, "-e", script], (l) => seen.push(l));
  assert.ok(p.poll, "read on demand");
  assert.equal(fifos(), before);
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(seen, [], "nothing is read behind the prober's back");
  p.poll();
  assert.deepEqual(seen, ["one", "two"]);
  assert.deepEqual(await p.exited, { code: 0, signal: null });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, ["one", "two", "three"], "what it printed before exiting still arrives");
  p.poll();
  assert.equal(seen.length, 3);
});

test("spawnPolledLines: a command that cannot start exits 127 with the reason", async () => {
  const p = spawnPolledLines(["/nonexistent/nflb-helper"], () => {});
  const e = await p.exited;
  assert.equal(e.code, 127);
  assert.match(describeExit(e, p.stderr()), /^exited 127: .*ENOENT/);
});
