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
