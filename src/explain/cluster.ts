import type { ClusterConfig } from "../config/schema.ts";
import type { Assignment } from "../cluster/ownership.ts";
import { planCluster } from "../cluster/render.ts";
import type { Trace } from "../nft/ruleset/trace.ts";
import type { Query } from "./packet.ts";
import { stepLine } from "./trace-packet.ts";

/**
 * Which cluster node takes a new connection to the cluster's VIP: the bucket the traced
 * `jhash … mod buckets seed S` of the input filter gives, and that bucket's owner in the
 * assignment the nodes keep in etcd. Pure.
 */
export interface ClusterAnswer {
  /** null when the bucket depends on a source port that was not given. */
  bucket: number | null;
  /** The owning node; null when the assignment is not known or the bucket is unowned. */
  node: string | null;
  trace: string[];
}

export function isClusterVip(c: ClusterConfig | undefined, q: Query): boolean {
  if (!c) return false;
  const p = planCluster(c);
  return q.dst.text === (q.dst.family === 4 ? p.vip4 : p.vip6);
}

/** `assignment`: undefined when it could not be read, null when etcd holds none yet. */
export function explainCluster(
  c: ClusterConfig,
  q: Query,
  t: Trace | undefined,
  assignment: Assignment | null | undefined,
  live: boolean,
): ClusterAnswer {
  const p = planCluster(c);
  const trace = [`cluster ${p.name}: ${q.dst.text} is its VIP; every node sees the packet, one accepts it`];
  const steps = (t?.steps ?? []).filter((s) => s.chain === "cluster_in" || s.chain === "input_filter");
  trace.push(...steps.map(stepLine));
  const hash = t?.hashes.find((h) => h.expr.includes(`mod ${p.buckets} seed`));
  if (!hash) {
    trace.push(`the bucket depends on the source port (give --sport N)`);
    return { bucket: null, node: null, trace };
  }
  const bucket = hash.value;
  trace.push(`${hash.expr} = bucket ${bucket}`);
  if (live) trace.push(`this node ${t?.verdict === "accept" ? "owns" : "does not own"} bucket ${bucket} now`);
  if (assignment === undefined) {
    trace.push("the bucket's owner is kept in etcd, which did not answer");
    return { bucket, node: null, trace };
  }
  const owner = assignment && assignment.buckets === p.buckets ? assignment.owners[bucket] || null : null;
  if (owner)
    trace.push(
      `etcd's assignment gives bucket ${bucket} to ${owner} (members: ${assignment?.members.join(", ")})`,
    );
  else trace.push(`no node owns bucket ${bucket} now: new connections from this source are not accepted`);
  return { bucket, node: owner, trace };
}
