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
import { packetOf, pathOf, tracePacket } from "./trace-packet.ts";
import { explainUplinks, type UplinkAnswer } from "./uplinks.ts";
import { desiredState } from "../plan/desired.ts";
import { planCluster } from "../cluster/render.ts";

/**
 * `nflb explain`: where a new connection goes, and why. The packet is traced through nflb's nft
 * table by the same tracer the unit tests use (src/nft/ruleset): the kernel's own table when it
 * could be read, else the table rendered from the config with the health the daemon reports.
 * The plan only names what the trace found (marks → uplinks, DNAT → backends). Pure.
 */
export interface ExplainInputs {
  health: HealthView;
  /** Where the health came from, for people ("live from the daemon at …" or "assumed …"). */
  healthSource: string;
  facts: Facts;
  /** `nft list table inet nflb` as the kernel prints it; missing: rendered from the config. */
  ruleset?: string;
  /** The cluster's bucket assignment from etcd: undefined when unknown, null when there is none. */
  assignment?: Assignment | null;
  /** Domain rules holding the destination (the daemon's `GET /api/v1/dns?address=`); undefined: unknown. */
  domains?: readonly { rule: string; domain: string; left_s: number }[];
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
  const local: Addr[] = [...inp.facts.interfaces.values()].flatMap((i) => i.addresses);
  const text = inp.ruleset ?? desiredState(c, inp.health, inp.facts).nft;
  const live = inp.ruleset !== undefined;
  const plan = planUplinks(c, inp.health.uplinks, inp.facts);

  if (c.cluster && isClusterVip(c.cluster, q) && (q.iif === undefined || q.iif === c.cluster.interface)) {
    const cl = planCluster(c.cluster);
    const pkt = packetOf(
      q,
      { localAddresses: [...local, ...vipAddrs(cl)], iif: c.cluster.interface },
      "input",
    );
    const outcomes = tracePacket(text, pkt);
    out.kind = "cluster";
    out.cluster = explainCluster(c.cluster, q, outcomes[0], inp.assignment, live);
    return out;
  }

  const iif = plan?.balanceFrom?.[0];
  const pkt = packetOf(q, { localAddresses: local, ...(iif !== undefined ? { iif } : {}) }, pathOf(q, local));
  const outcomes = tracePacket(text, pkt);
  const services = planServices(c, inp.health.services, inp.facts);
  const svc = findService(services, q);
  if (svc) {
    out.kind = "service";
    out.service = explainService(svc, q, outcomes);
    out.notes.push("the DNATed connection is routed to the backend by the main table's routes");
    return out;
  }
  const listening = servicesOn(services, q);
  if (listening.length) {
    out.notes.push(
      `services listen on ${q.dst.text}: ${listening.map((s) => `${s.name} ${s.protocol}/${s.port}`).join(", ")}; give PROTO PORT to see the backend`,
    );
  }

  if (!plan) {
    out.notes.push("the config balances no uplinks: the routing table decides");
    return out;
  }
  out.kind = "uplinks";
  out.uplinks = explainUplinks(plan, q, outcomes, {
    localAddresses: local,
    live,
    ...(inp.domains ? { domains: inp.domains } : {}),
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
      up: fam === 4 ? u.live4 : u.live6,
    });
  }
  return out;
}

function vipAddrs(p: { vip4: string | null; vip6: string | null }): Addr[] {
  const out: Addr[] = [];
  if (p.vip4) out.push({ family: 4, text: p.vip4 });
  if (p.vip6) out.push({ family: 6, text: p.vip6 });
  return out;
}
