import type { Command } from "commander";

/** The demo's traffic defaults and limits, for --help (src/lab/demo-traffic.ts owns them; a test keeps these equal). */
export const LAB_TRAFFIC_HELP = { rate: "20", duration: "10m", maxRate: 500 } as const;

const lab = () => import("./actions-lab.ts");

/** `nflb lab up|down|cut|restore|traffic|status`: the demo in network namespaces. */
export function registerLabVerbs(program: Command): void {
  const labCmd = program
    .command("lab")
    .description(
      "a self-contained demo in network namespaces: LAN client, router running nflb run, isp1–isp3, internet, web servers",
    )
    .addHelpText(
      "after",
      "\nExample:\n  nflb lab up          # build it, start traffic, print the dashboard URL\n  nflb lab cut isp1    # watch isp1 go down on the dashboard\n  nflb lab down\n\nExit status: 0 done; 1 it failed or there is no demo lab.",
    )
    // `nflb lab status | head` closes the pipe early: that is not an error.
    .hook("preAction", () => {
      process.stdout.on("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "EPIPE") process.exit(0);
        throw e;
      });
    });

  labCmd
    .command("up")
    .description("build the demo, start nflb run and steady traffic; prints the dashboard URL")
    .option("--no-traffic", "do not start the traffic generator")
    .addHelpText("after", "\nExample:\n  sudo nflb lab up   # then open the printed http:// URL")
    .action(async (o: { traffic: boolean }) => (await lab()).labUp(o));

  labCmd
    .command("down")
    .description("stop the demo's processes (by pid) and remove every namespace and the host link it made")
    .addHelpText("after", "\nExample:\n  nflb lab down")
    .action(async () => (await lab()).labDown());

  labCmd
    .command("cut")
    .argument("<link>", "uplink name: isp1, isp2 or isp3")
    .description("cut an uplink upstream: its ISP keeps the carrier up but forwards nothing")
    .addHelpText(
      "after",
      "\nExample:\n  nflb lab cut isp1   # the dashboard shows isp1 down, with the reason, within 2 s",
    )
    .action(async (link: string) => (await lab()).labCut(link));

  labCmd
    .command("restore")
    .argument("<link>", "uplink name: isp1, isp2 or isp3")
    .description("mend an uplink cut with `lab cut`")
    .addHelpText("after", "\nExample:\n  nflb lab restore isp1")
    .action(async (link: string) => (await lab()).labRestore(link));

  labCmd
    .command("traffic")
    .description("start (or restart) a steady, bounded stream of connections from the LAN client")
    .option(
      "--rate <n>",
      `new connections per second (1..${LAB_TRAFFIC_HELP.maxRate})`,
      LAB_TRAFFIC_HELP.rate,
    )
    .option("--duration <d>", "stop after this long (at most 1h)", LAB_TRAFFIC_HELP.duration)
    .option("--stop", "stop the traffic generator")
    .addHelpText(
      "after",
      "\nExamples:\n  nflb lab traffic --rate 50 --duration 2m\n  nflb lab traffic --stop",
    )
    .action(async (o: { rate: string; duration: string; stop?: boolean }) => (await lab()).labTraffic(o));

  labCmd
    .command("status")
    .description("is a demo running; its URL, traffic, cut links, and the daemon's status")
    .option("--json", "print the demo's record and the daemon's status as JSON")
    .addHelpText("after", "\nExample:\n  nflb lab status")
    .action(async (o: { json?: boolean }) => (await lab()).labStatus(o));

  // The long-lived process behind `lab up`; started detached, not meant to be run by hand.
  labCmd
    .command("keeper", { hidden: true })
    .requiredOption("--dir <dir>")
    .action(async (o: { dir: string }) => (await lab()).labKeeper(o));
}
