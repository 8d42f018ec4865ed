// `nflb`, `nflb --help` and `nflb --version` print precomputed text (src/cli/main.ts): it must be
// exactly what commander prints, so it cannot drift from the verbs' definitions.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { commanderHelp, helpSource, HELP_FILE } from "../../scripts/gen-help.ts";
import { HELP } from "../../src/cli/help-text.ts";
import { VERSION } from "../../src/cli/defaults.ts";
import { readFileSync } from "node:fs";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const TSX = fileURLToPath(new URL("../../node_modules/tsx/dist/esm/index.mjs", import.meta.url));

test("the precomputed help is commander's (npm run gen:help when this fails)", async () => {
  assert.equal(HELP, commanderHelp());
  assert.equal(readFileSync(HELP_FILE, "utf8"), await helpSource());
});

test("nflb, --help, help and --version answer as commander does, on the same streams and exit codes", () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, ["--import", TSX, MAIN, ...args], { encoding: "utf8" });
  for (const a of ["--help", "-h", "help"]) {
    const r = run([a]);
    assert.deepEqual([r.status, r.stdout, r.stderr], [0, HELP, ""], a);
  }
  const none = run([]);
  assert.deepEqual([none.status, none.stdout, none.stderr], [1, "", HELP]);
  for (const a of ["--version", "-V"])
    assert.equal(
      execFileSync(process.execPath, ["--import", TSX, MAIN, a], { encoding: "utf8" }),
      `${VERSION}\n`,
    );
  // Anything else goes to commander: a verb's help.
  const verb = run(["check", "--help"]);
  assert.equal(verb.status, 0);
  assert.match(verb.stdout, /^Usage: nflb check/);
});
