import { test } from "node:test";
import assert from "node:assert/strict";
import { describeExit, onHelperOutput, spawnLines } from "../../src/health/probe-process.ts";

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
