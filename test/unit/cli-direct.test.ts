// main.ts runs `plan` and `apply` without commander when their command line holds nothing but
// their own options (src/cli/direct-verb.ts): it must read every such line as commander does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Command } from "commander";
import { buildProgram } from "../../src/cli/program.ts";
import { directVerb } from "../../src/cli/direct-verb.ts";
import { DEFAULT_CONFIG_PATH } from "../../src/cli/defaults.ts";

/** The options commander hands the verb's action for `args`, or undefined when it refuses them. */
async function commanderOpts(args: string[]): Promise<Record<string, unknown> | undefined> {
  const program = buildProgram();
  let got: Record<string, unknown> | undefined;
  const quiet = (c: Command) => {
    c.exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} });
    for (const sub of c.commands) quiet(sub);
  };
  quiet(program);
  for (const c of program.commands)
    if (c.name() === "apply" || c.name() === "plan")
      c.action((o: Record<string, unknown>) => {
        got = { ...o };
      });
  try {
    await program.parseAsync(["node", "nflb", ...args]);
  } catch {
    return undefined;
  }
  return got;
}

test("plan and apply with only their own options: the same options as commander's", async () => {
  const lines = [
    ["apply"],
    ["apply", "-c", "/etc/nflb/x.yaml"],
    ["apply", "--config", "rel/x.yaml", "--json"],
    ["apply", "--json", "-c", "x.yaml"],
    ["plan"],
    ["plan", "-c", "x.yaml", "--offline"],
    ["plan", "--diff", "--json", "--config", "x.yaml"],
    ["plan", "--offline", "--diff"],
  ];
  for (const args of lines) {
    const d = directVerb(args);
    assert.ok(d, `${args.join(" ")} is taken directly`);
    assert.equal(d.verb, args[0]);
    assert.deepEqual({ ...d.opts }, await commanderOpts(args), args.join(" "));
  }
  assert.equal(directVerb(["apply"])?.opts.config, DEFAULT_CONFIG_PATH);
});

test("anything else goes to commander: help, other verbs, repeated, unknown or missing options", () => {
  const lines = [
    [],
    ["check"],
    ["down"],
    ["apply", "--help"],
    ["apply", "-h"],
    ["apply", "-c"],
    ["apply", "-c", ""],
    ["apply", "-c", "--json"],
    ["apply", "-c", "a.yaml", "-c", "b.yaml"],
    ["apply", "--json", "--json"],
    ["apply", "--offline"],
    ["apply", "--diff"],
    ["apply", "extra"],
    ["apply", "--config=a.yaml"],
    ["apply", "-ca.yaml"],
    ["plan", "--", "x"],
    ["plan", "--verbose"],
  ];
  for (const args of lines) assert.equal(directVerb(args), undefined, args.join(" "));
});
