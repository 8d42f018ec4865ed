import type { Command } from "commander";
import { EXIT_HELP } from "./exit.ts";
import { configOption } from "./verbs-config.ts";

export interface ExplainOpts {
  config: string;
  api?: string;
  iif?: string;
  sport?: string;
  local?: boolean;
  offline?: boolean;
  json?: boolean;
}

/** explain: which rule, uplink, backend or cluster node a new connection gets, and why. */
export function registerExplainVerbs(program: Command): void {
  program
    .command("explain")
    .description(
      "which rule matches a new connection, and which uplink, backend or cluster node it gets now, and why",
    )
    .argument("<src>", "source address")
    .argument("<dst>", "destination address")
    .argument("[proto]", "tcp, udp or icmp")
    .argument("[port]", "destination port (tcp, udp)")
    .addOption(configOption())
    .option("--api <host:port>", "ask this daemon for live health (default: the config's api.listen)")
    .option(
      "--iif <interface>",
      "the interface the connection arrives on (default: a balanced LAN interface)",
    )
    .option("--sport <port>", "source port (for a cluster hashing on source-port)")
    .option("--local", "the router's own traffic (implied when SRC is one of its addresses)")
    .option("--offline", "ask nothing: no daemon, kernel or etcd; every uplink and backend assumed up")
    .option("--json", "print the explanation as JSON")
    .addHelpText(
      "after",
      `
Health comes from the running daemon (GET /api/v1/status) when it answers; otherwise every
uplink and backend is assumed up, and the output says so. Hash methods (source-hash,
source-dest-hash, maglev, the cluster's buckets) are computed exactly as the kernel does.

Examples:
  nflb explain 192.168.1.23 66.218.65.10 tcp 443          # which rule and uplink
  nflb explain 10.0.0.5 203.0.113.10 tcp 80 --json        # which backend of a service
  nflb explain 198.51.100.7 192.168.0.2 tcp 80 --sport 40000   # which cluster node

${EXIT_HELP.common}`,
    )
    .action(
      async (
        src: string,
        dst: string,
        proto: string | undefined,
        port: string | undefined,
        o: ExplainOpts,
        cmd: Command,
      ) => (await import("./actions-explain.ts")).explainAction(src, dst, proto, port, o, cmd),
    );
}
