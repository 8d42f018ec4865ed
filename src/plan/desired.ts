import type { Config } from "../config/schema.ts";
import { ARP_TABLE_REF, clusterSysctls, planCluster, renderCluster } from "../cluster/render.ts";
import { renderTable, TABLE_REF, type TableSections } from "../render/nft.ts";
import { renderUplinks, renderUplinkUpdate } from "../render/nft-uplinks.ts";
import { renderExec } from "../render/nft-exec.ts";
import { renderServices, renderServicesUpdate } from "../render/nft-services.ts";
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
}

export function allHealthy(c: Config): HealthView {
  return { uplinks: allUp(c), services: {} };
}

/** Everything nflb wants the kernel to hold, computed without touching it. */
export interface Desired {
  uplinks: UplinkPlan | null;
  services: ServicesPlan | null;
  /** The whole table: replaces whatever `inet nflb` holds, in one transaction. */
  nft: string;
  /**
   * Only the health-dependent maps and decision chains, rewritten in place in one transaction;
   * valid when the table was built from the same config (same `nft` structure).
   */
  update: string;
  routing: RoutingPlan;
  sysctls: SysctlSpec[];
}

export const EMPTY_ROUTING = (c: Config): RoutingPlan => ({
  rules: [],
  routes: [],
  tables: { from: c.table_base, to: c.table_base + Object.keys(c.uplinks ?? {}).length },
  priorities: { from: c.rule_priority_base, to: c.rule_priority_base + 999 },
});

export function desiredState(
  c: Config,
  health: HealthView,
  facts: Facts,
  extra: Partial<TableSections> = {},
): Desired {
  const uplinks = planUplinks(c, health.uplinks, facts);
  const routing = uplinks ? planRouting(uplinks) : EMPTY_ROUTING(c);
  const services = planServices(c, health.services, facts);
  const svc = services ? renderServices(services) : null;
  // The cluster filter with no bucket accepted: the agent adds its buckets (with their fence
  // timeouts) in the same transaction, or later as an element update (src/cluster/render.ts).
  const cluster = c.cluster ? renderCluster(planCluster(c.cluster)) : null;
  const sections = [
    ...(uplinks ? [renderUplinks(uplinks, serviceFamilies(services)), renderExec()] : []),
    ...(svc ? [svc.section] : []),
    ...(cluster ? [cluster.section] : []),
    ...(extra.sections ?? []),
  ];
  const dnat = {
    prerouting: [...(svc?.dnat.prerouting ?? []), ...(extra.dnat?.prerouting ?? [])],
    output: [...(svc?.dnat.output ?? []), ...(extra.dnat?.output ?? [])],
  };
  const nft = renderTable({
    ...extra,
    sections,
    dnat,
    input: [...(cluster?.input ?? []), ...(extra.input ?? [])],
    comment: "managed by nflb: edit the config, not this table",
  });
  const sysctls = planSysctls(c, uplinks ? routing : null);
  for (const s of clusterSysctls(c)) if (!sysctls.some((w) => w.key === s.key)) sysctls.push(s);
  const updateLines = [
    ...(uplinks ? renderUplinkUpdate(uplinks, TABLE_REF) : []),
    ...(services ? renderServicesUpdate(services, TABLE_REF) : []),
  ];
  return {
    uplinks,
    services,
    // The ARP rewrite lives in its own `arp nflb` table, replaced in the same transaction; without
    // one (no cluster, or no IPv4 VIP) a table left by an earlier config goes in that transaction.
    nft: nft + (cluster?.arpScript || NO_ARP_TABLE),
    update: updateLines.join("\n") + "\n",
    routing,
    sysctls,
  };
}

const NO_ARP_TABLE = `add table ${ARP_TABLE_REF}\ndelete table ${ARP_TABLE_REF}\n`;

/** Families that have at least one service (and so a `svc_vips` set). */
function serviceFamilies(p: ServicesPlan | null): (4 | 6)[] {
  return ([4, 6] as const).filter((f) => p?.services.some((s) => s.family === f));
}
