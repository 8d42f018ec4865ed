import { Command } from "commander";
import { ConfigError } from "../config/issues.ts";
import { NftError } from "../system/nft.ts";
import { registerConfigVerbs } from "./verbs-config.ts";
import { registerClusterVerbs } from "./verbs-cluster.ts";
import { registerDaemonVerbs } from "./verbs-daemon.ts";
import { registerExplainVerbs } from "./verbs-explain.ts";
import { registerExecVerbs } from "./verbs-exec.ts";
import { registerLabVerbs } from "./verbs-lab.ts";

const program = new Command("nflb")
  .description("Load balancing with the kernel's own data plane: nftables, conntrack and policy routing.")
  .showHelpAfterError()
  .configureHelp({ sortSubcommands: false });

registerConfigVerbs(program);
registerClusterVerbs(program);
registerDaemonVerbs(program);
registerExplainVerbs(program);
registerExecVerbs(program);
registerLabVerbs(program);

/** Errors the user can act on are printed plainly, with exit 1; anything else is a bug and shows its stack. */
program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof ConfigError || e instanceof NftError) {
    process.stderr.write(`nflb: ${e.message}\n`);
  } else {
    process.stderr.write(`nflb: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  }
  process.exit(1);
});
