import { loadConfig } from "../config/load.ts";
import { clusterPrefix, memberRows, parseView } from "../cluster/keys.ts";
import { clusterEtcdClient, readPushPublicKey, readPushSigningKey } from "../cluster/secrets.ts";
import { pushConfig, sharedDocument, validateShared } from "../cluster/shared-config.ts";
import { signConfig, verifyConfig } from "../cluster/signing.ts";
import { CliError, EXIT } from "./exit.ts";
import { printJson, say } from "./output.ts";
import type { ClusterOpts } from "./verbs-cluster.ts";

async function clusterOf(file: string) {
  const loaded = await loadConfig(file);
  const cl = loaded.config.cluster;
  if (!cl) throw new CliError(`${file} has no \`cluster\` section`, EXIT.config);
  return { loaded, cl, etcd: await clusterEtcdClient(cl, { timeoutMs: 3000 }) };
}

export async function push(o: ClusterOpts & { signingKey: string }): Promise<void> {
  const { loaded, cl, etcd } = await clusterOf(o.config);
  const key = await readPushSigningKey(o.signingKey);
  if (cl.push_public_key) {
    const pub = await readPushPublicKey(cl.push_public_key);
    if (!verifyConfig(pub, cl.name, 1, "", signConfig(key, cl.name, 1, "")))
      throw new CliError(
        `${o.signingKey} is not the private key of ${cl.push_public_key}: members would refuse the push`,
        EXIT.config,
      );
  }
  const doc = sharedDocument(loaded.text);
  // What members will check, checked here first (same schema, same limits).
  const v = validateShared(doc.text, loaded.config, cl.node ?? "pusher", null);
  if (!v.ok) throw new CliError(`the shared part of ${o.config} is refused: ${v.message}`, EXIT.config);
  const rec = await pushConfig(etcd, cl.name, doc.text, key);
  if (doc.left.length && !o.json)
    process.stderr.write(`not pushed (each node keeps its own): ${doc.left.join(", ")}\n`);
  if (o.json)
    return printJson({
      ok: true,
      cluster: cl.name,
      version: rec.version,
      sha256: rec.sha256,
      signed: true,
      not_pushed: doc.left,
    });
  say(`cluster ${cl.name}: pushed config version ${rec.version} (sha256 ${rec.sha256.slice(0, 12)}, signed)`);
}

export async function status(o: ClusterOpts): Promise<void> {
  const { cl, etcd } = await clusterOf(o.config);
  const r = await etcd.rangePrefix(clusterPrefix(cl.name));
  const v = parseView(cl.name, r.revision, r.kvs);
  const members = memberRows(v);
  const status = {
    cluster: cl.name,
    buckets: cl.buckets,
    /** What the cluster was created with; a member with other values refuses to join. */
    params: v.params,
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
