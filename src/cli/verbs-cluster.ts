import type { Command } from "commander";
import { Option } from "commander";
import { DEFAULT_CONFIG_PATH, loadConfig } from "../config/load.ts";
import { clusterPrefix, parseView } from "../cluster/keys.ts";
import { bucketsOf } from "../cluster/ownership.ts";
import { clusterEtcdClient, readPushPublicKey, readPushSigningKey } from "../cluster/secrets.ts";
import { pushConfig, sharedDocument, validateShared } from "../cluster/shared-config.ts";
import { signConfig, verifyConfig } from "../cluster/signing.ts";

const cfg = () => new Option("-c, --config <file>", "config file").default(DEFAULT_CONFIG_PATH);

async function clusterOf(file: string) {
  const loaded = await loadConfig(file);
  const cl = loaded.config.cluster;
  if (!cl) throw new Error(`${file} has no \`cluster\` section`);
  return { loaded, cl, etcd: await clusterEtcdClient(cl, { timeoutMs: 3000 }) };
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
        "  nflb cluster push -c /etc/nflb/nflb.yaml --signing-key /root/nflb-push.key",
    )
    .action(async (o: { config: string; signingKey: string }) => {
      const { loaded, cl, etcd } = await clusterOf(o.config);
      const key = await readPushSigningKey(o.signingKey);
      if (cl.push_public_key) {
        const pub = await readPushPublicKey(cl.push_public_key);
        if (!verifyConfig(pub, cl.name, 1, "", signConfig(key, cl.name, 1, "")))
          throw new Error(
            `${o.signingKey} is not the private key of ${cl.push_public_key}: members would refuse the push`,
          );
      }
      const doc = sharedDocument(loaded.text);
      // What members will check, checked here first (same schema, same limits).
      const v = validateShared(doc.text, loaded.config, cl.node ?? "pusher", null);
      if (!v.ok) throw new Error(`the shared part of ${o.config} is refused: ${v.message}`);
      const rec = await pushConfig(etcd, cl.name, doc.text, key);
      if (doc.left.length)
        process.stderr.write(`not pushed (each node keeps its own): ${doc.left.join(", ")}\n`);
      process.stdout.write(
        `cluster ${cl.name}: pushed config version ${rec.version} (sha256 ${rec.sha256.slice(0, 12)}, signed)\n`,
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
        /** What the cluster was created with; a member with other values refuses to join. */
        params: v.params,
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
