import { test } from "node:test";
import assert from "node:assert/strict";
import { exec } from "../../src/system/exec.ts";

test("maxStdout: a command that prints more is killed and its result says truncated", async () => {
  const many = [process.execPath, "-e", "setInterval(() => process.stdout.write('x'.repeat(65536)), 1)"];
  const r = await exec(many, { maxStdout: 100_000, timeoutMs: 10_000 });
  assert.equal(r.truncated, true);
  assert.equal(r.code, 128);
  const ok = await exec([process.execPath, "-e", "process.stdout.write('hello')"], { maxStdout: 100 });
  assert.deepEqual(ok, { code: 0, stdout: "hello", stderr: "" });
});

test("stdoutToFile: the whole output, however big, without a reader; over maxStdout not read", async () => {
  const print = [process.execPath, "-e", "process.stdout.write('y'.repeat(1 << 20))"];
  const r = await exec(print, { stdoutToFile: true });
  assert.equal(r.code, 0);
  assert.equal(r.stdout.length, 1 << 20);
  const big = await exec(print, { stdoutToFile: true, maxStdout: 1000 });
  assert.deepEqual([big.truncated, big.stdout], [true, ""]);
  const fail = await exec([process.execPath, "-e", "console.error('no'); process.exit(3)"], {
    stdoutToFile: true,
  });
  assert.deepEqual(fail, { code: 3, stdout: "", stderr: "no\n" });
});
