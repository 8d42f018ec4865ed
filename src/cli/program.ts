// The CLI's verbs (options and help) with commander; each verb's action imports its
// implementation when it runs, so `nflb status` never loads the daemon, the HTTP server, the
// metrics or the etcd client (the bundle splits every dynamic import into a chunk). main.ts loads
// this only when it cannot answer from the precomputed help (help-text.ts).
import { Command } from "commander";
import { VERSION } from "./defaults.ts";
import { reportFailure } from "./exit.ts";
import { helpWidth } from "./help-width.ts";
import { registerConfigVerbs } from "./verbs-config.ts";
import { registerClusterVerbs } from "./verbs-cluster.ts";
import { registerControlVerbs } from "./verbs-control.ts";
import { registerDaemonVerbs } from "./verbs-daemon.ts";
import { registerExplainVerbs } from "./verbs-explain.ts";
import { registerExecVerbs } from "./verbs-exec.ts";
import { registerLabVerbs } from "./verbs-lab.ts";

export function buildProgram(): Command {
  const program = new Command("nflb")
    .description("Load balancing with the kernel's own data plane: nftables, conntrack and policy routing.")
    .version(VERSION, "-V, --version", "print nflb's version")
    .showHelpAfterError()
    .configureHelp({ sortSubcommands: false })
    .configureOutput({
      getOutHelpWidth: () => helpWidth(process.stdout),
      getErrHelpWidth: () => helpWidth(process.stderr),
    })
    .addHelpText(
      "after",
      "\nExit status: 0 ok; 2 an invalid config (the error names its YAML path and line); 1 a runtime failure.\n" +
        "`nflb status`: 0 all up, 1 degraded, 2 down or no daemon. Each verb's --help says more.",
    );

  registerConfigVerbs(program);
  registerDaemonVerbs(program);
  registerControlVerbs(program);
  registerClusterVerbs(program);
  registerExplainVerbs(program);
  registerExecVerbs(program);
  registerLabVerbs(program);
  return program;
}

/** Errors the user can act on are printed plainly; anything else is a bug and shows its stack. */
export async function runCli(argv: string[]): Promise<void> {
  await buildProgram()
    .parseAsync(argv)
    .catch((e: unknown) => reportFailure(e, argv));
}
