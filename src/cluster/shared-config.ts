import { createHash, type KeyObject } from "node:crypto";
import { isMap, LineCounter, parseDocument, stringify } from "yaml";
import * as z from "zod";
import { crossCheck } from "../config/cross-checks.ts";
import { formatIssue, locate, type ConfigIssue } from "../config/issues.ts";
import { clusterSchema, configSchema, type Config } from "../config/schema.ts";
import { systemCheck } from "../config/system-checks.ts";
import type { Facts } from "../plan/types.ts";
import type { EtcdClient } from "../system/etcd.ts";
import { clusterPrefix, configKey, parseView, type SharedConfig } from "./keys.ts";
import { signConfig } from "./signing.ts";

/**
 * What a member takes from etcd: the services (with their backends) and the cluster's tuning.
 * Everything else is the node's own and never comes from etcd: hooks (`on_change`), the API,
 * uplinks and routing, and in `cluster` the node's name, interface, etcd endpoints, TLS,
 * credentials and keys. Whoever can write to etcd can change what the VIP serves, not what the
 * node runs.
 */
export const SHARED_TOP = ["version", "services", "cluster"] as const;
export const SHARED_CLUSTER = ["name", "buckets", "hash", "vip", "lease"] as const;

/** Keys every node must agree on at all times: changing them re-partitions the hash space. */
const IDENTITY = ["name", "buckets", "hash"] as const;

/** A pushed document larger than this is refused unread. */
export const MAX_PUSHED_BYTES = 1024 * 1024;

const cs = clusterSchema.shape;
const sharedSchema = z.strictObject({
  version: z.literal(1),
  services: configSchema.shape.services,
  cluster: z.strictObject({
    name: cs.name,
    buckets: cs.buckets,
    hash: cs.hash,
    vip: cs.vip,
    lease: cs.lease,
  }),
});

export type Validated = { ok: true; config: Config } | { ok: false; message: string };

const fail = (message: string): Validated => ({ ok: false, message });
const issuesText = (issues: readonly ConfigIssue[]) => issues.map(formatIssue).join("; ");

/** Keys of a pushed document that are not shared (so a member never takes them from etcd). */
export function notShared(raw: unknown): string[] {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return [];
  const out: string[] = [];
  for (const k of Object.keys(raw)) if (!(SHARED_TOP as readonly string[]).includes(k)) out.push(k);
  const cl = (raw as Record<string, unknown>).cluster;
  if (cl !== null && typeof cl === "object" && !Array.isArray(cl))
    for (const k of Object.keys(cl))
      if (!(SHARED_CLUSTER as readonly string[]).includes(k)) out.push(`cluster.${k}`);
  return out;
}

/**
 * Check a pushed document as THIS node would run it: bounded in size, only shared keys, the
 * same schema as a config file, the cluster's identity unchanged, and the result (the node's own
 * config with the shared parts replaced) passing the cross-checks and this host's checks.
 */
export function validateShared(text: string, running: Config, node: string, facts: Facts | null): Validated {
  if (Buffer.byteLength(text, "utf8") > MAX_PUSHED_BYTES)
    return fail(`the pushed config is larger than ${MAX_PUSHED_BYTES} bytes`);
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e ? lc.linePos(e.pos[0]).line : 0;
    return fail(`YAML syntax (line ${line}): ${e?.message.split("\n")[0] ?? "error"}`);
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return fail(`YAML: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`);
  }
  if (!isMap(doc.contents)) return fail("the pushed config is not a mapping");
  const foreign = notShared(raw);
  if (foreign.length > 0)
    return fail(
      `not shared through etcd: ${foreign.join(", ")} (a member takes only services and cluster.${SHARED_CLUSTER.join("/")}; node-local settings come from its own file)`,
    );
  const parsed = sharedSchema.safeParse(raw);
  if (!parsed.success)
    return fail(
      issuesText(
        parsed.error.issues.map((i) =>
          locate(doc, lc, {
            path: i.path.map((p) => (typeof p === "symbol" ? String(p) : p)),
            message: i.message,
          }),
        ),
      ),
    );
  const shared = parsed.data;
  // A path names a file on this node: never taken from etcd (it could make a member read any file).
  const paths = Object.entries(shared.services ?? {}).filter(([, svc]) => svc.check.ca !== undefined);
  if (paths.length)
    return fail(
      paths
        .map(([name]) => `services.${name}.check.ca: a file path is node-local and never taken from etcd`)
        .join("; "),
    );
  const cur = running.cluster;
  if (!cur) return fail("this node runs no `cluster` section");
  for (const k of IDENTITY) {
    if (cur[k] !== shared.cluster[k])
      return fail(
        `cluster.${k} differs (${String(cur[k])} → ${String(shared.cluster[k])}): it re-partitions every bucket; change it with the cluster stopped`,
      );
  }
  const config: Config = {
    ...running,
    cluster: { ...cur, vip: shared.cluster.vip, lease: shared.cluster.lease, node },
  };
  if (shared.services) config.services = shared.services;
  else delete config.services;
  const issues = crossCheck(config);
  if (issues.length) return fail(issuesText(issues.map((i) => locate(doc, lc, i))));
  if (facts) {
    const sys = systemCheck(config, facts);
    if (sys.length) return fail(issuesText(sys));
  }
  return { ok: true, config };
}

/**
 * The part of a config file that `nflb cluster push` stores: its services and the cluster's
 * shared keys, as written (durations stay "2s"). `left` names what stayed behind.
 */
export function sharedDocument(fileText: string): { text: string; left: string[] } {
  const raw = parseDocument(fileText, { uniqueKeys: true }).toJS({ maxAliasCount: 100 }) as Record<
    string,
    unknown
  >;
  const cl = (raw.cluster ?? {}) as Record<string, unknown>;
  const cluster: Record<string, unknown> = {};
  for (const k of SHARED_CLUSTER) if (cl[k] !== undefined) cluster[k] = cl[k];
  const out: Record<string, unknown> = { version: raw.version ?? 1, cluster };
  if (raw.services !== undefined) out.services = raw.services;
  return { text: stringify(out), left: notShared(raw) };
}

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * Store a document as the next shared version, signed for that version (compare-and-swap on the
 * key, so two pushes cannot both claim the same version). The caller has validated it.
 */
export async function pushConfig(
  etcd: EtcdClient,
  name: string,
  text: string,
  key: KeyObject,
): Promise<SharedConfig> {
  const ck = configKey(name);
  for (let attempt = 0; attempt < 5; attempt++) {
    // Past every version a member ran or refused, so a garbled key cannot send the count back
    // (members refuse a version older than the one they run: a replay).
    const r0 = await etcd.rangePrefix(clusterPrefix(name));
    const view = parseView(name, r0.revision, r0.kvs);
    const cur = r0.kvs.find((kv) => kv.key === ck) ?? null;
    let version = (view.config?.version ?? 0) + 1;
    for (const m of view.members.values())
      version = Math.max(version, (m.config_version ?? 0) + 1, (m.config_error?.version ?? 0) + 1);
    const rec: SharedConfig = {
      version,
      sha256: sha256(text),
      text,
      pushed_at: new Date().toISOString(),
      signature: signConfig(key, name, version, text),
    };
    const r = await etcd.txn({
      compare: [{ key: ck, target: "mod", result: "equal", modRevision: cur?.modRevision ?? 0 }],
      success: [{ put: { key: ck, value: JSON.stringify(rec) } }],
    });
    if (r.succeeded) return rec;
  }
  throw new Error("cluster push: the config key kept changing; try again");
}
