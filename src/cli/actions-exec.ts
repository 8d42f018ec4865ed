import type { Command } from "commander";
import { loadConfig } from "../config/load.ts";
import { ExecViaError, execVia } from "../exec/run.ts";
import type { ExecOpts } from "./verbs-exec.ts";

export async function execAction(argv: string[], o: ExecOpts, cmd: Command): Promise<void> {
  const { config } = await loadConfig(o.config);
  try {
    process.exitCode = await execVia({
      config,
      via: o.via,
      argv,
      say: (line) => process.stderr.write(`nflb exec: ${line}\n`),
    });
  } catch (e) {
    if (e instanceof ExecViaError) cmd.error(`error: ${e.message}`);
    throw e;
  }
}
