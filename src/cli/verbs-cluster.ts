import type { Command } from "commander";
import { Option } from "commander";
import { DEFAULT_CONFIG_PATH, loadConfig } from "../config/load.ts";
import { clusterPrefix, parseView } from "../cluster/keys.ts";
import { bucketsOf } from "../cluster/ownership.ts";
import { pushConfig } from "../cluster/shared-config.ts";
import { EtcdClient } from "../system/etcd.ts";

const cfg = () => new Option("-c, --config <file>", "config file").default(DEFAULT_CONFIG_PATH);

async function clusterOf(file: string) {
  const loaded = await loadConfig(file);
  const cl = loaded.config.cluster;
  if (!cl) throw new Error(`${file} has no \`cluster\` section`);
  return { loaded, cl, etcd: new EtcdClient(cl.etcd, { timeoutMs: 3000 }) };
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
    .addOption(cfg())
    .addHelpText("after", "\nExample:\n  nflb cluster push -c /etc/nflb/nflb.yaml")
    .action(async (o: { config: string }) => {
      const { loaded, cl, etcd } = await clusterOf(o.config);
      const rec = await pushConfig(etcd, cl.name, loaded.text);
      process.stdout.write(
        `cluster ${cl.name}: pushed config version ${rec.version} (sha256 ${rec.sha256.slice(0, 12)})\n`,
      );
    });

  cluster
    .command("status")
    .description("members, buckets per member and the config version each one runs")
    .addOption(cfg())
    .option("--json", "machine-readable output")
    .addHelpText("after", "\nExample:\n  nflb cluster status -c /etc/nflb/nflb.yaml")
    .action(async (o: { config: string; json?: boolean }) => {
      const { cl, etcd } = await clusterOf(o.config);
      const r = await etcd.rangePrefix(clusterPrefix(cl.name));
      const v = parseView(cl.name, r.revision, r.kvs);
      const members = [...v.members.values()]
        .sort((a, b) => (a.node < b.node ? -1 : 1))
        .map((m) => ({
          node: m.node,
          address: m.address,
          buckets: v.holds.get(m.node)?.size ?? 0,
          target: bucketsOf(v.assignment, m.node).length,
          config_version: m.config_version,
          config_error: m.config_error,
        }));
      const status = {
        cluster: cl.name,
        buckets: cl.buckets,
        config_version: v.config?.version ?? null,
        members,
      };
      if (o.json) {
        process.stdout.write(JSON.stringify(status, null, 2) + "\n");
        return;
      }
      const lines = [
        `cluster ${cl.name}: ${members.length} member(s), ${cl.buckets} buckets, shared config v${status.config_version ?? "-"}`,
        "NODE             ADDRESS                  BUCKETS  TARGET  CONFIG",
      ];
      for (const m of members) {
        const conf = `v${m.config_version ?? "-"}${m.config_error ? ` (refused v${m.config_error.version}: ${m.config_error.message})` : ""}`;
        lines.push(
          `${m.node.padEnd(16)} ${m.address.padEnd(24)} ${String(m.buckets).padStart(7)}  ${String(m.target).padStart(6)}  ${conf}`,
        );
      }
      process.stdout.write(lines.join("\n") + "\n");
    });
}
