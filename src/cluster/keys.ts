import * as z from "zod";
import type { KeyValue } from "../system/etcd.ts";
import { bucketsOf, type Assignment } from "./ownership.ts";

/**
 * The cluster's keys in etcd, all under one prefix per cluster name:
 *   members/NODE  (leased)  who is alive, its address and the config version it runs
 *   holds/NODE    (leased)  buckets NODE may have in its kernel (a superset of them)
 *   assignment              the target owner of every bucket
 *   config                  the shared config pushed with `nflb cluster push` (signed)
 *   params                  buckets and hash, written by the member that created the cluster
 */
export const clusterPrefix = (name: string) => `/nflb/cluster/${name}/`;
export const memberKey = (name: string, node: string) => `${clusterPrefix(name)}members/${node}`;
export const holdsKey = (name: string, node: string) => `${clusterPrefix(name)}holds/${node}`;
export const holdsPrefix = (name: string) => `${clusterPrefix(name)}holds/`;
export const assignmentKey = (name: string) => `${clusterPrefix(name)}assignment`;
export const configKey = (name: string) => `${clusterPrefix(name)}config`;
export const paramsKey = (name: string) => `${clusterPrefix(name)}params`;
export const membersPrefix = (name: string) => `${clusterPrefix(name)}members/`;

export const memberSchema = z.object({
  node: z.string(),
  address: z.string(),
  lease: z.string(),
  config_version: z.number().int().nullable(),
  config_error: z.object({ version: z.number().int(), message: z.string() }).nullable(),
  started_at: z.string(),
});
export type MemberRecord = z.infer<typeof memberSchema>;

export const holdsSchema = z.object({ buckets: z.array(z.number().int().nonnegative()) });

export const assignmentSchema = z.object({
  buckets: z.number().int().positive(),
  members: z.array(z.string()),
  owners: z.array(z.string()),
});

export const sharedConfigSchema = z.object({
  version: z.number().int().positive(),
  sha256: z.string(),
  text: z.string(),
  pushed_at: z.string(),
  /** Ed25519 over signedBytes(cluster, version, text), base64 (signing.ts). */
  signature: z.string().max(200).optional(),
});
export type SharedConfig = z.infer<typeof sharedConfigSchema>;

/** What partitions the hash space: every member must run the same. */
export const paramsSchema = z.object({
  buckets: z.number().int().positive(),
  hash: z.string(),
});
export type ClusterParams = z.infer<typeof paramsSchema>;

export const parseParams = (value: string): ClusterParams | null => parseJson(paramsSchema, value);
export const sameParams = (a: ClusterParams | null, b: ClusterParams) =>
  a !== null && a.buckets === b.buckets && a.hash === b.hash;

export interface ClusterView {
  revision: number;
  members: Map<string, MemberRecord>;
  holds: Map<string, Set<number>>;
  holdsMod: Map<string, number>;
  /** The lease each holds key is attached to ("0": none). */
  holdsLease: Map<string, string>;
  assignment: Assignment | null;
  assignmentMod: number;
  config: SharedConfig | null;
  params: ClusterParams | null;
}

/** A value larger than this is not something nflb wrote (a pushed config is at most 1 MiB). */
const MAX_VALUE_CHARS = 2 * 1024 * 1024;

function parseJson<T>(schema: z.ZodType<T>, text: string): T | null {
  if (text.length > MAX_VALUE_CHARS) return null;
  try {
    const r = schema.safeParse(JSON.parse(text));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** Read one range of the prefix into a view; malformed values are ignored (treated as absent). */
export function parseView(name: string, revision: number, kvs: readonly KeyValue[]): ClusterView {
  const prefix = clusterPrefix(name);
  const view: ClusterView = {
    revision,
    members: new Map(),
    holds: new Map(),
    holdsMod: new Map(),
    holdsLease: new Map(),
    assignment: null,
    assignmentMod: 0,
    config: null,
    params: null,
  };
  for (const kv of kvs) {
    if (!kv.key.startsWith(prefix)) continue;
    const rest = kv.key.slice(prefix.length);
    if (rest.startsWith("members/")) {
      const m = parseJson(memberSchema, kv.value);
      if (m && m.node === rest.slice(8)) view.members.set(m.node, m);
    } else if (rest.startsWith("holds/")) {
      const h = parseJson(holdsSchema, kv.value);
      if (h) {
        view.holds.set(rest.slice(6), new Set(h.buckets));
        view.holdsMod.set(rest.slice(6), kv.modRevision);
        view.holdsLease.set(rest.slice(6), kv.lease);
      }
    } else if (rest === "assignment") {
      const a = parseJson(assignmentSchema, kv.value);
      if (a && a.owners.length === a.buckets) {
        view.assignment = a;
        view.assignmentMod = kv.modRevision;
      }
    } else if (rest === "config") {
      view.config = parseJson(sharedConfigSchema, kv.value);
    } else if (rest === "params") {
      view.params = parseJson(paramsSchema, kv.value);
    }
  }
  return view;
}

/** Each member as `nflb cluster status` and the daemon's status show it, sorted by node name. */
export function memberRows(v: ClusterView) {
  return [...v.members.values()]
    .sort((a, b) => (a.node < b.node ? -1 : 1))
    .map((m) => ({
      node: m.node,
      address: m.address,
      buckets: v.holds.get(m.node)?.size ?? 0,
      target: bucketsOf(v.assignment, m.node).length,
      config_version: m.config_version,
      config_error: m.config_error,
    }));
}
