import type { ClusterConfig, Config } from "../config/schema.ts";
import { clusterSysctls, planCluster, buildCluster } from "../cluster/render.ts";
import type { Ruleset } from "../nft/model.ts";
import { serialize } from "../nft/serialize.ts";
import { TABLE } from "../nft/names.ts";
import { buildTable } from "./nft-table.ts";
import { buildUplinks } from "./nft-uplinks.ts";
import { buildExec } from "./nft-exec.ts";
import { buildDomains } from "./nft-domains.ts";
import { buildServices } from "./nft-services.ts";
import { ownedTables } from "../config/owned-ranges.ts";
import { planRouting, type RoutingPlan } from "./routing.ts";
import { planSysctls, type SysctlSpec } from "./sysctls.ts";
import { allUp, planUplinks } from "./uplinks.ts";
import { planServices, type ServicesPlan } from "./services.ts";
import type { Facts, Health, ServiceHealth, UplinkPlan } from "./types.ts";

/** Health of everything nflb balances over, as the reconcile loop sees it. */
export interface HealthView {
  uplinks: Health;
  /** Missing services/backends count as up at their configured weight. */
  services: ServiceHealth;
  /**
   * Set by a builder that keeps `services` (the same container object) from build to build and
   * patches it (the daemon's, src/daemon/health-view.ts): which records changed since an earlier
   * build, so the planner re-plans only those services.
   */
  changes?: ServiceChanges;
}

export interface ServiceChanges {
  /** This build's number, counted per container. */
  readonly gen: number;
  /** The services whose record differs between build `gen` of the same container and this one; null when unknown. */
  since(gen: number): ReadonlySet<string> | null;
}

export function allHealthy(c: Config): HealthView {
  return { uplinks: allUp(c), services: {} };
}

/** Everything nflb wants the kernel to hold, computed without touching it. */
export interface Desired {
  uplinks: UplinkPlan | null;
  services: ServicesPlan | null;
  /** Every nft object nflb wants (src/nft/model.ts): the daemon diffs it against what it applied. */
  model: Ruleset;
  /** `model` as one script that replaces whatever nflb's tables hold, in one transaction (computed on first use). */
  readonly nft: string;
  routing: RoutingPlan;
  sysctls: SysctlSpec[];
}

export const EMPTY_ROUTING = (c: Config): RoutingPlan => ({
  rules: [],
  routes: [],
  tables: ownedTables(c),
  priorities: { from: c.rule_priority_base, to: c.rule_priority_base + 999 },
});

/** `previous`: the services plan in force (the daemon's), which a config edit changes as little as it can. */
export function desiredState(
  c: Config,
  health: HealthView,
  facts: Facts,
  previous?: ServicesPlan | null,
): Desired {
  const uplinks = planUplinks(c, health.uplinks, facts);
  const routing = uplinks ? planRouting(uplinks) : EMPTY_ROUTING(c);
  const services = planServices(c, health.services, facts, previous, health.changes);
  const model = buildModel(uplinks, services, c.cluster);
  const sysctls = planSysctls(c, uplinks ? routing : null);
  for (const s of clusterSysctls(c)) if (!sysctls.some((w) => w.key === s.key)) sysctls.push(s);
  return withScript({ uplinks, services, model, routing, sysctls });
}

/** `d` with its `nft` script rendered from `d.model` on first use (a diff never needs it). */
export function withScript(d: Omit<Desired, "nft">): Desired {
  let script: string | undefined;
  return {
    ...d,
    get nft() {
      return (script ??= serialize(d.model));
    },
  };
}

/** Plans → the model of every table nflb owns. Pure. */
export function buildModel(
  uplinks: UplinkPlan | null,
  services: ServicesPlan | null,
  clusterConfig: ClusterConfig | undefined,
): Ruleset {
  const svc = services ? buildServices(services) : null;
  // The cluster filter with no bucket accepted: the agent owns the owned set's elements (its
  // buckets with their fence timeouts), written in the same transaction as a full replace.
  const cluster = clusterConfig ? buildCluster(planCluster(clusterConfig)) : null;
  const sections = [
    // Domains first: their prerouting rule must see packets before `restore_mark` sends them on.
    ...(uplinks
      ? [buildDomains(uplinks), buildUplinks(uplinks, serviceFamilies(services)), buildExec()]
      : []),
    ...(svc ? [svc.section] : []),
    ...(cluster ? [cluster.section] : []),
  ];
  const inet = buildTable({
    sections,
    dnat: { prerouting: svc?.dnat.prerouting ?? [], output: svc?.dnat.output ?? [] },
    input: cluster?.input ?? [],
    comment: "managed by nflb: edit the config, not this table",
  });
  // The ARP rewrite lives in its own `arp nflb` table; without one (no cluster, or no IPv4 VIP)
  // a table left by an earlier config goes in the same transaction.
  const arp = cluster?.arpTable;
  return { tables: arp ? [inet, arp] : [inet], absent: arp ? [] : [{ family: "arp", name: TABLE }] };
}

/** Families that have at least one service (and so a `svc_vips` set). */
function serviceFamilies(p: ServicesPlan | null): (4 | 6)[] {
  return ([4, 6] as const).filter((f) => p?.services.some((s) => s.family === f));
}
