import type { Command } from "commander";
import { DEFAULT_API } from "./defaults.ts";
import { EXIT_HELP } from "./exit.ts";
import { configOption, jsonOption } from "./verbs-config.ts";

export interface ControlOpts {
  config: string;
  api?: string;
  json?: boolean;
}
export interface BackendOpts extends ControlOpts {
  wait?: boolean;
  timeout: string;
}

export type UplinkAction = "disable" | "enable";
export type BackendAction = "drain" | "enable" | "maint";

const apiHelp = `API address (default: the config's api.listen, ${DEFAULT_API})`;

function common(cmd: Command): Command {
  return cmd.addOption(configOption()).option("--api <host:port>", apiHelp).addOption(jsonOption());
}

/** `nflb uplink …` and `nflb backend …`: the API's operator actions, from the command line. */
export function registerControlVerbs(program: Command): void {
  const uplink = program
    .command("uplink")
    .description("take an uplink out of the balance by hand, or put it back (the running daemon)");
  for (const [action, what] of [
    ["disable", "no new connections through it (established ones stay), until enabled; kept across restarts"],
    ["enable", "back into the balance (when its probes say it is up)"],
  ] as const)
    common(uplink.command(action).description(what).argument("<name>", "uplink name"))
      .addHelpText("after", `\nExample:\n  nflb uplink ${action} isp1\n\n${EXIT_HELP.control}`)
      .action(async (name: string, o: ControlOpts) =>
        (await import("./actions-control.ts")).uplink(action, name, o),
      );

  const backend = program
    .command("backend")
    .description("drain a service's backend, put it in maintenance, enable it or set its weight");
  for (const [action, what, wait] of [
    [
      "drain",
      "no new connections; established ones finish (--wait: until none is left)",
      "wait until the backend holds no connection",
    ],
    [
      "maint",
      "maintenance: no new connections and no health checks (--wait: until no connection is left)",
      "wait until the backend holds no connection",
    ],
    ["enable", "clear drain and maint: back to its weight, checks on", "wait until its checks say it is up"],
  ] as const)
    common(
      backend
        .command(action)
        .description(what)
        .argument("<service>", "service name")
        .argument("<address>", "backend ADDRESS:PORT (or ADDRESS, when only one backend has it)"),
    )
      .option("--wait", wait)
      .option("--timeout <duration>", "with --wait: give up after this long", "5m")
      .addHelpText(
        "after",
        `\nExamples:\n  nflb backend ${action} web 10.1.1.2:80${action === "enable" ? "" : " --wait --timeout 10m"}\n\n${EXIT_HELP.control}` +
          (action === "enable" ? "" : "\nWith --wait, 1 also when connections are left at the timeout."),
      )
      .action(async (service: string, address: string, o: BackendOpts) =>
        (await import("./actions-control.ts")).backend(action, service, address, o),
      );

  common(
    backend
      .command("weight")
      .description("change a backend's weight at run time (kept across restarts; a reload keeps it)")
      .argument("<service>", "service name")
      .argument("<address>", "backend ADDRESS:PORT")
      .argument("<weight>", "0..10000 (0: no new connections)"),
  )
    .addHelpText("after", `\nExample:\n  nflb backend weight web 10.1.1.2:80 5\n\n${EXIT_HELP.control}`)
    .action(async (service: string, address: string, weight: string, o: ControlOpts) =>
      (await import("./actions-control.ts")).weight(service, address, weight, o),
    );
}
