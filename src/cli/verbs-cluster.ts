import type { Command } from "commander";
import { EXIT_HELP } from "./exit.ts";
import { configOption, jsonOption } from "./verbs-config.ts";

export interface ClusterOpts {
  config: string;
  json?: boolean;
}

/** `nflb cluster push|status`: the shared config and the members' view, straight from etcd. */
export function registerClusterVerbs(program: Command): void {
  const cluster = program
    .command("cluster")
    .description("a VIP shared by several nodes, coordinated through etcd");

  cluster
    .command("push")
    .description(
      "validate the config and store it in etcd as the next shared version; every member applies it",
    )
    .addOption(configOption())
    .addOption(jsonOption())
    .requiredOption(
      "--signing-key <file>",
      "Ed25519 private key (PEM, not world-readable) whose public key members have in cluster.push_public_key",
    )
    .addHelpText(
      "after",
      "\nOnly the shared part is pushed: services and cluster name/buckets/hash/vip/lease. Hooks, the API,\n" +
        "uplinks, etcd settings and keys stay on each node.\n\nExample:\n" +
        "  openssl genpkey -algorithm ed25519 -out /root/nflb-push.key\n" +
        "  openssl pkey -in /root/nflb-push.key -pubout -out /etc/nflb/push.pub   # cluster.push_public_key\n" +
        `  nflb cluster push -c /etc/nflb/nflb.yaml --signing-key /root/nflb-push.key\n\n${EXIT_HELP.common}`,
    )
    .action(async (o: ClusterOpts & { signingKey: string }) =>
      (await import("./actions-cluster.ts")).push(o),
    );

  cluster
    .command("status")
    .description("members, buckets per member and the config version each one runs")
    .addOption(configOption())
    .option("--json", "machine-readable output")
    .addHelpText("after", `\nExample:\n  nflb cluster status -c /etc/nflb/nflb.yaml\n\n${EXIT_HELP.common}`)
    .action(async (o: ClusterOpts) => (await import("./actions-cluster.ts")).status(o));
}
