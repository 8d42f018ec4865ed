import { Option, type Command } from "commander";
import { DEFAULT_CONFIG_PATH } from "./defaults.ts";
import { EXIT_HELP } from "./exit.ts";

export const configOption = () =>
  new Option("-c, --config <file>", "config file").default(DEFAULT_CONFIG_PATH);
export const jsonOption = () => new Option("--json", "machine-readable output (errors too, on stdout)");

export interface CheckOpts {
  config: string;
  offline?: boolean;
  json?: boolean;
}
export interface DownOpts {
  config?: string;
  json?: boolean;
}

/** check, plan, apply, down: the verbs that turn a config into a data plane once. */
export function registerConfigVerbs(program: Command): void {
  program
    .command("check")
    .description("validate the config; every error names its YAML path and line")
    .addOption(configOption())
    .option("--offline", "skip checks against this host (interfaces, addresses)")
    .addOption(jsonOption())
    .addHelpText("after", `\nExample:\n  nflb check -c /etc/nflb/nflb.yaml\n\n${EXIT_HELP.check}`)
    .action(async (o: CheckOpts) => (await import("./actions-config.ts")).check(o));

  program
    .command("plan")
    .description(
      "print the nftables script and the ip rules/routes that apply would install; changes nothing",
    )
    .addOption(configOption())
    .option("--offline", "plan without reading this host's interfaces")
    .option(
      "--diff",
      "show only what apply would change in the live kernel (nft objects and elements, ip rules and routes, sysctls)",
    )
    .addOption(jsonOption())
    .addHelpText(
      "after",
      `\nExamples:\n  nflb plan -c /etc/nflb/nflb.yaml | less\n  nflb plan --diff       # after a hand edit, or before an apply: what would change\n\n${EXIT_HELP.common}`,
    )
    .action(async (o: CheckOpts & { diff?: boolean }) => (await import("./run-config-verb.ts")).runPlan(o));

  program
    .command("apply")
    .description("install the data plane once, every uplink and backend assumed healthy")
    .addOption(configOption())
    .addOption(jsonOption())
    .addHelpText(
      "after",
      `\nExample:\n  nflb apply -c /etc/nflb/nflb.yaml\n\n${EXIT_HELP.common} On a failure nothing is half-applied.`,
    )
    .action(async (o: CheckOpts) => (await import("./run-config-verb.ts")).runApply(o));

  program
    .command("down")
    .description("remove everything nflb installed (table, rules, routes, sysctls) and nothing else")
    .addOption(new Option("-c, --config <file>", "config file (optional; used for its table/rule ranges)"))
    .addOption(jsonOption())
    .addHelpText("after", `\nExample:\n  nflb down\n\n${EXIT_HELP.common}`)
    .action(async (o: DownOpts) => (await import("./actions-config.ts")).down(o));
}
