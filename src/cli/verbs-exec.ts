import type { Command } from "commander";
import { configOption } from "./verbs-config.ts";

export interface ExecOpts {
  via: string;
  config: string;
}

/** exec --via: run one command on the router whose traffic leaves by one uplink (mwan3's `use`). */
export function registerExecVerbs(program: Command): void {
  program
    .command("exec")
    .description("run one command on the router whose traffic leaves by one uplink (to test a link by hand)")
    .requiredOption("--via <uplink>", "the uplink the command's connections use, up or down")
    .addOption(configOption())
    .argument("<command...>", "the command and its arguments, after --")
    .addHelpText(
      "after",
      `
The command runs in a cgroup of its own; nflb's table sends every new connection it opens
through the uplink, whether the daemon thinks the uplink is up or not, and NATs it like any
connection leaving there. Needs root, the data plane installed (nflb apply or nflb run) and
cgroup v2.

Examples:
  nflb exec --via isp2 -- curl -sS https://example.com/
  nflb exec --via isp2 -- ping -c 3 9.9.9.9
  nflb exec --via vpna -c /etc/nflb/nflb.yaml -- dig @9.9.9.9 example.com

Exit status: the command's; 1 when it could not be run (unknown uplink, no data plane);
2 the config is invalid.`,
    )
    .action(async (argv: string[], o: ExecOpts, cmd: Command) =>
      (await import("./actions-exec.ts")).execAction(argv, o, cmd),
    );
}
