import { test } from "node:test";
import assert from "node:assert/strict";
import { NftSession } from "../../src/system/nft-session.ts";
import { NftError } from "../../src/system/nft.ts";

// A stand-in for `nft -i` that answers as nft 1.0.6 does: nothing for a transaction that applies,
// its errors on stderr for one that does not, a syntax error (echoing the line) for anything else.
// A script holding "DIE" ends it mid-transaction; "SLOW" never answers.
const FAKE = String.raw`
const { readFileSync } = require("node:fs");
let buf = "";
process.stdin.setEncoding("utf8").on("data", (d) => {
  buf += d;
  for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    const m = /^include "(.*)"$/.exec(line);
    if (m) {
      const text = readFileSync(m[1], "utf8");
      if (text.includes("DIE")) process.exit(1);
      if (text.includes("SLOW")) { buf = ""; return; }
      if (text.includes("WARN")) process.stderr.write("Warning: something nft only mentions\n");
      if (text.includes("BAD")) process.stderr.write("In file included from <cmdline>:1:1-20:\n" + m[1] + ":1:1-3: Error: Could not process rule: No such file or directory\nBAD\n^^^\n");
      continue;
    }
    process.stderr.write("Error: syntax error, unexpected newline, expecting string\n" + line + "\n" + " ".repeat(line.length) + "^\n");
  }
});
`;

const session = (o: { timeoutMs?: number } = {}) =>
  new NftSession({ argv: [process.execPath, "-e", FAKE], retryMs: 0, ...o });

test("transactions through one session: applied ones answer nothing, a rejected one throws NftError with nft's message", async () => {
  const s = session();
  try {
    assert.equal(await s.apply("add element inet nflb x { 1 }\n"), true);
    await assert.rejects(s.apply("BAD\n"), (e: unknown) => {
      assert.ok(e instanceof NftError);
      assert.match(e.message, /Could not process rule/);
      assert.doesNotMatch(e.message, /nflb_done/);
      return true;
    });
    // A warning alone is no failure (nft -f exits 0 with it).
    assert.equal(await s.apply("WARN\n"), true);
    // The session goes on: the next transaction's answer is its own.
    assert.equal(await s.apply("add element inet nflb x { 2 }\n"), true);
    const all = await Promise.all([s.apply("a\n"), s.apply("b\n"), s.apply("c\n")]);
    assert.deepEqual(all, [true, true, true]);
  } finally {
    s.close();
  }
});

test("a session that ends or stalls mid-transaction throws (the outcome is unknown), and the next call starts another", async () => {
  const s = session({ timeoutMs: 300 });
  try {
    await assert.rejects(s.apply("DIE\n"), /ended during a transaction/);
    assert.equal(await s.apply("ok\n"), true);
    await assert.rejects(s.apply("SLOW\n"), /did not answer in time/);
    assert.equal(await s.apply("ok\n"), true);
  } finally {
    s.close();
  }
});

test("no session when nft cannot be started: the caller runs nft -f", async () => {
  const s = new NftSession({ argv: ["/nonexistent/nft", "-i"], retryMs: 60_000 });
  try {
    // The spawn error arrives after the call: the first call fails as unknown, later ones fall back.
    const first = await s.apply("x\n").catch(() => false);
    assert.equal(first, false);
    assert.equal(await s.apply("x\n"), false);
  } finally {
    s.close();
  }
});
