import type { ClusterConfig } from "../config/schema.ts";
import type { Assignment } from "../cluster/ownership.ts";
import { planCluster } from "../cluster/render.ts";
import { hex } from "../nft/text.ts";
import { nftJhash } from "./jhash.ts";
import { addrBytes, concatKey, portBytes, type Query } from "./packet.ts";

/**
 * Which cluster node takes a new connection to the cluster's VIP: the bucket the kernel's
 * `jhash … mod buckets seed S` gives (src/cluster/render.ts), and that bucket's owner in the
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
  assignment: Assignment | null | undefined,
): ClusterAnswer {
  const p = planCluster(c);
  const trace = [`cluster ${p.name}: ${q.dst.text} is its VIP; every node sees the packet, one accepts it`];
  const ip = q.src.family === 4 ? "ip" : "ip6";
  const withPort = p.hash === "source-port" && (q.proto === "tcp" || q.proto === "udp");
  if (withPort && q.sport === undefined) {
    trace.push(`hash source-port: the bucket depends on the source port (give --sport N)`);
    return { bucket: null, node: null, trace };
  }
  const key = withPort ? concatKey(addrBytes(q.src), portBytes(q.sport ?? 0)) : addrBytes(q.src);
  const expr = withPort ? `${ip} saddr . th sport` : `${ip} saddr`;
  const bucket = nftJhash(key, p.buckets, p.seed);
  trace.push(`jhash ${expr} mod ${p.buckets} seed ${hex(p.seed)} = bucket ${bucket}`);
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
