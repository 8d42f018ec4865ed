import type { Command } from "commander";
import { Option } from "commander";
import { DEFAULT_CONFIG_PATH, loadConfig } from "../config/load.ts";
import { ExecViaError, execVia } from "../exec/run.ts";

/** exec --via: run one command on the router whose traffic leaves by one uplink (mwan3's `use`). */
export function registerExecVerbs(program: Command): void {
  program
    .command("exec")
    .description("run one command on the router whose traffic leaves by one uplink (to test a link by hand)")
    .requiredOption("--via <uplink>", "the uplink the command's connections use, up or down")
    .addOption(new Option("-c, --config <file>", "config file").default(DEFAULT_CONFIG_PATH))
    .argument("<command...>", "the command and its arguments, after --")
    .addHelpText(
      "after",
      `
The command runs in a cgroup of its own; nflb's table sends every new connection it opens
through the uplink, whether the daemon thinks the uplink is up or not, and NATs it like any
connection leaving there. Needs root, the data plane installed (nflb apply or nflb run) and
cgroup v2. The exit status is the command's.

Examples:
  nflb exec --via isp2 -- curl -sS https://example.com/
  nflb exec --via isp2 -- ping -c 3 9.9.9.9
  nflb exec --via vpna -c /etc/nflb/nflb.yaml -- dig @9.9.9.9 example.com`,
    )
    .action(async (argv: string[], o: { via: string; config: string }, cmd: Command) => {
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
    });
}
