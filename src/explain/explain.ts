import type { Assignment } from "../cluster/ownership.ts";
import type { Config } from "../config/schema.ts";
import type { Addr } from "../net/ip.ts";
import type { HealthView } from "../plan/desired.ts";
import { planServices } from "../plan/services.ts";
import type { Facts } from "../plan/types.ts";
import { planUplinks } from "../plan/uplinks.ts";
import { explainCluster, isClusterVip, type ClusterAnswer } from "./cluster.ts";
import { describeQuery, type Query } from "./packet.ts";
import { explainService, findService, servicesOn, type ServiceAnswer } from "./services.ts";
import { explainUplinks, type UplinkAnswer } from "./uplinks.ts";

/**
 * `nflb explain`: where a new connection goes, and why, computed from the same plan the data
 * plane is rendered from (src/plan), with the health the daemon reports. Pure.
 */
export interface ExplainInputs {
  health: HealthView;
  /** Where the health came from, for people ("live from the daemon at …" or "assumed …"). */
  healthSource: string;
  facts: Facts;
  /** Sticky rules' memory for this pair, read from the kernel (see UplinkContext.sticky). */
  sticky?: ReadonlyMap<number, number | null>;
  /** The cluster's bucket assignment from etcd: undefined when unknown, null when there is none. */
  assignment?: Assignment | null;
}

export interface UplinkDetails {
  name: string;
  interface: string;
  gateway: string | null;
  nat: "masquerade" | "none" | "snat";
  /** The source address the far end sees, when known. */
  source: string | null;
  up: boolean;
}

export interface Explanation {
  query: string;
  health: string;
  /** What decided: a cluster node, a service's backend, or the uplink balance. */
  kind: "cluster" | "service" | "uplinks" | "none";
  /** The uplink rule that matched, if any. */
  rule: string | null;
  cluster?: ClusterAnswer;
  service?: ServiceAnswer;
  uplinks?: UplinkAnswer;
  /** Every uplink named by the outcome, with how it sends the packet. */
  uplinkDetails: UplinkDetails[];
  notes: string[];
}

export function explain(c: Config, q: Query, inp: ExplainInputs): Explanation {
  const out: Explanation = {
    query: describeQuery(q),
    health: inp.healthSource,
    kind: "none",
    rule: null,
    uplinkDetails: [],
    notes: [],
  };

  if (c.cluster && isClusterVip(c.cluster, q) && (q.iif === undefined || q.iif === c.cluster.interface)) {
    out.kind = "cluster";
    out.cluster = explainCluster(c.cluster, q, inp.assignment);
    return out;
  }

  const services = planServices(c, inp.health.services, inp.facts);
  const svc = findService(services, q);
  if (svc) {
    out.kind = "service";
    out.service = explainService(svc, q);
    out.notes.push("the DNATed connection is routed to the backend by the main table's routes");
    return out;
  }
  const listening = servicesOn(services, q);
  if (listening.length) {
    out.notes.push(
      `services listen on ${q.dst.text}: ${listening.map((s) => `${s.name} ${s.protocol}/${s.port}`).join(", ")}; give PROTO PORT to see the backend`,
    );
  }

  const plan = planUplinks(c, inp.health.uplinks, inp.facts);
  if (!plan) {
    out.notes.push("the config balances no uplinks: the routing table decides");
    return out;
  }
  const local: Addr[] = [...inp.facts.interfaces.values()].flatMap((i) => i.addresses);
  out.kind = "uplinks";
  out.uplinks = explainUplinks(c, plan, q, {
    localAddresses: local,
    ...(inp.sticky ? { sticky: inp.sticky } : {}),
  });
  out.rule = out.uplinks.rule;
  const o = out.uplinks.outcome;
  const names = o.kind === "uplink" ? [o.uplink] : o.kind === "spread" ? o.shares.map((s) => s.name) : [];
  for (const name of names) {
    const u = plan.uplinks.find((x) => x.name === name);
    if (!u) continue;
    const fam = q.src.family;
    const addr = u.addresses.find((a) => a.family === fam)?.text ?? null;
    out.uplinkDetails.push({
      name,
      interface: u.iface,
      gateway: (fam === 4 ? u.gw4 : u.gw6) ?? null,
      nat: u.nat,
      source: u.nat === "none" ? q.src.text : addr,
      up: u.live,
    });
  }
  return out;
}
