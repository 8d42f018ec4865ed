import { createHash } from "node:crypto";
import { ConfigError } from "../config/issues.ts";
import { parseConfigSource } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { systemCheck } from "../config/system-checks.ts";
import type { Facts } from "../plan/types.ts";
import type { EtcdClient } from "../system/etcd.ts";
import { configKey, sharedConfigSchema, type SharedConfig } from "./keys.ts";

/** Keys every node must agree on at all times: changing them re-partitions the hash space. */
const IDENTITY = ["name", "buckets", "hash"] as const;

export type Validated = { ok: true; config: Config } | { ok: false; message: string };

/**
 * Check a pushed config as THIS node would run it: it must parse, keep the cluster's identity,
 * and pass this host's checks. The node's own name always comes from the node, not the push.
 */
export function validateShared(text: string, running: Config, node: string, facts: Facts | null): Validated {
  let config: Config;
  try {
    config = parseConfigSource(text, "<pushed config>").config;
  } catch (e) {
    if (e instanceof ConfigError) return { ok: false, message: e.message };
    return { ok: false, message: e instanceof Error ? e.message : String(e) };
  }
  const cur = running.cluster;
  const next = config.cluster;
  if (!cur || !next) return { ok: false, message: "the pushed config has no `cluster` section" };
  for (const k of IDENTITY) {
    if (cur[k] !== next[k])
      return {
        ok: false,
        message: `cluster.${k} differs (${String(cur[k])} → ${String(next[k])}): it re-partitions every bucket; change it with the cluster stopped`,
      };
  }
  config = { ...config, cluster: { ...next, node } };
  if (facts) {
    const issues = systemCheck(config, facts);
    if (issues.length)
      return { ok: false, message: issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ") };
  }
  return { ok: true, config };
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * Store a config as the next shared version (compare-and-swap on the key, so two pushes cannot
 * both claim the same version). The caller has validated it.
 */
export async function pushConfig(etcd: EtcdClient, name: string, text: string): Promise<SharedConfig> {
  const key = configKey(name);
  for (let attempt = 0; attempt < 5; attempt++) {
    const cur = await etcd.get(key);
    let version = 1;
    if (cur) {
      const parsed = sharedConfigSchema.safeParse(JSON.parse(cur.value || "null"));
      version = parsed.success ? parsed.data.version + 1 : 1;
    }
    const rec: SharedConfig = { version, sha256: sha256(text), text, pushed_at: new Date().toISOString() };
    const r = await etcd.txn({
      compare: [{ key, target: "mod", result: "equal", modRevision: cur?.modRevision ?? 0 }],
      success: [{ put: { key, value: JSON.stringify(rec) } }],
    });
    if (r.succeeded) return rec;
  }
  throw new Error("cluster push: the config key kept changing; try again");
}
