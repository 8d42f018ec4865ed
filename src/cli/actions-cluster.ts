import { loadConfig } from "../config/load.ts";
import { clusterPrefix, parseView } from "../cluster/keys.ts";
import { bucketsOf } from "../cluster/ownership.ts";
import { pushConfig } from "../cluster/shared-config.ts";
import { EtcdClient } from "../system/etcd.ts";
import { CliError, EXIT } from "./exit.ts";
import { printJson, say } from "./output.ts";
import type { ClusterOpts } from "./verbs-cluster.ts";

async function clusterOf(file: string) {
  const loaded = await loadConfig(file);
  const cl = loaded.config.cluster;
  if (!cl) throw new CliError(`${file} has no \`cluster\` section`, EXIT.config);
  return { loaded, cl, etcd: new EtcdClient(cl.etcd, { timeoutMs: 3000 }) };
}

export async function push(o: ClusterOpts): Promise<void> {
  const { loaded, cl, etcd } = await clusterOf(o.config);
  const rec = await pushConfig(etcd, cl.name, loaded.text);
  if (o.json) return printJson({ ok: true, cluster: cl.name, version: rec.version, sha256: rec.sha256 });
  say(`cluster ${cl.name}: pushed config version ${rec.version} (sha256 ${rec.sha256.slice(0, 12)})`);
}

export async function status(o: ClusterOpts): Promise<void> {
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
  if (o.json) return printJson(status);
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
  say(lines.join("\n"));
}
