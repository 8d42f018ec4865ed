import type { Command } from "commander";
import { DEFAULT_API } from "./defaults.ts";
import { EXIT_HELP } from "./exit.ts";
import { configOption, jsonOption } from "./verbs-config.ts";

export interface RunOpts {
  config: string;
  api?: string;
  node?: string;
}
export interface StatusOpts {
  config: string;
  api?: string;
  json?: boolean;
}
export interface ReloadOpts extends StatusOpts {
  timeout: string;
}

const apiOption = `API address (default: the config's api.listen, ${DEFAULT_API})`;

/** run (the daemon), status and reload (ask it). */
export function registerDaemonVerbs(program: Command): void {
  program
    .command("run")
    .description(
      "the daemon: apply, probe, fail over, serve the API; SIGHUP reloads, SIGTERM leaves the data plane in place",
    )
    .addOption(configOption())
    .option("--api <host:port>", `API address (default: api.listen, ${DEFAULT_API})`)
    .option("--node <name>", "this node's name in the cluster (overrides cluster.node)")
    .addHelpText(
      "after",
      "\nLogs: one JSON line per event on stdout. Under systemd (JOURNAL_STREAM) or with\n" +
        "NFLB_LOG_FORMAT=journal each line starts with its syslog priority (<3> error, <4> warn,\n" +
        "<6> info, <7> debug), so `journalctl -p warning` finds every uplink or backend going down.\n" +
        "\nExample:\n  nflb run -c /etc/nflb/nflb.yaml --api 127.0.0.1:9110\n\n" +
        "Exit status: runs until SIGTERM/SIGINT, then 0; 2 the config is invalid at start; 1 it could not start.",
    )
    .action(async (o: RunOpts) => (await import("./actions-run.ts")).run(o));

  program
    .command("status")
    .description("ask the running daemon; a table for people, JSON for scripts")
    .addOption(configOption())
    .option("--json", "print the daemon's JSON")
    .option("--api <host:port>", apiOption)
    .addHelpText(
      "after",
      `\nExamples:\n  nflb status\n  nflb status --json | jq '.uplinks[].state'\n  nflb status >/dev/null || echo "not all up"\n\n${EXIT_HELP.status}`,
    )
    .action(async (o: StatusOpts) => (await import("./actions-status.ts")).status(o));

  program
    .command("reload")
    .description(
      "make the running daemon re-read its config and wait for the outcome (what SIGHUP does, with an answer)",
    )
    .addOption(configOption())
    .option("--api <host:port>", apiOption)
    .option("--timeout <duration>", "give up waiting after this long", "60s")
    .addOption(jsonOption())
    .addHelpText(
      "after",
      "\nThe daemon re-reads the file it was started with; -c names that file (it also tells where\n" +
        "the API listens). A config that is invalid or that the kernel refuses changes nothing.\n" +
        `\nExample:\n  nflb reload -c /etc/nflb/nflb.yaml\n\n${EXIT_HELP.reload}`,
    )
    .action(async (o: ReloadOpts, cmd: Command) =>
      (await import("./actions-status.ts")).reload({
        ...o,
        configGiven: cmd.getOptionValueSource("config") === "cli",
      }),
    );
}
