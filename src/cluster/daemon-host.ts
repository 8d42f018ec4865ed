import type { Config } from "../config/schema.ts";
import type { ClusterDaemonSide, ClusterPart } from "../daemon/monitors.ts";
import type { Log } from "../daemon/log.ts";
import { nftApply } from "../system/nft.ts";
import { ClusterAgent } from "./agent.ts";
import { KernelHost } from "./host.ts";
import type { Element } from "../nft/model.ts";
import { ownedElements, planCluster, renderOwnedUpdate, type OwnedElements } from "./render.ts";

/**
 * The cluster agent's host inside `nflb run`: the daemon's reconcile loop owns the table, so the
 * agent never replaces it. The cluster filter is part of every full replace (desiredState), and
 * the owned buckets ride along with what is left of their fence timeouts (`ownedElements`); bucket
 * updates are element-only transactions taken while no reconcile runs.
 */
export class DaemonClusterHost extends KernelHost {
  /** The buckets the kernel was last told to accept, and when their elements lapse. */
  private owned: { buckets: readonly number[]; until: number } | null = null;

  constructor(
    private readonly daemon: ClusterDaemonSide,
    private readonly now: () => number = Date.now,
    private readonly nft: (script: string) => Promise<unknown> = nftApply,
  ) {
    super();
  }

  override async setup(config: Config, owned: OwnedElements | null): Promise<void> {
    const cl = config.cluster;
    if (!cl) throw new Error("cluster host: config has no cluster section");
    if (owned) this.record(owned);
    // At start the daemon has already applied this config; a pushed one is applied as a reload.
    if (JSON.stringify(config) !== JSON.stringify(this.daemon.config())) await this.daemon.adopt(config);
    // The state file is shared with the reconcile loop's apply: no read-modify-write may interleave.
    await this.daemon.exclusive(async () => {
      const facts = await this.facts();
      await this.ensureAddresses(cl.interface, cl.vip, facts);
      const plan = planCluster(cl);
      for (const mac of [plan.mac4, plan.mac6]) if (mac) await this.ensureMaddr(cl.interface, mac);
    });
  }

  override setOwned(owned: OwnedElements): Promise<void> {
    return this.daemon.exclusive(async () => {
      // Recorded first: a full replace after a failed update must not bring released buckets back.
      this.record(owned);
      await this.nft(renderOwnedUpdate(owned));
    });
  }

  /** The owned set's elements a full replace writes: what is left of each fence (none once lapsed). */
  ownedElements(): Element[] {
    if (!this.owned) return [];
    return ownedElements({ buckets: this.owned.buckets, timeoutMs: this.owned.until - this.now() });
  }

  private record(owned: OwnedElements): void {
    this.owned = { buckets: [...owned.buckets], until: this.now() + Math.max(0, owned.timeoutMs) };
  }
}

/** The daemon's cluster part: the agent, on the daemon's host. Stopping hands the buckets over. */
export function daemonClusterPart(ctx: { config: Config; log: Log; daemon: ClusterDaemonSide }): ClusterPart {
  const host = new DaemonClusterHost(ctx.daemon);
  const agent = new ClusterAgent({ config: ctx.config, host });
  agent.on("log", (msg) => ctx.log.info({ node: agent.node }, `cluster: ${msg}`));
  // Every state change, whole: what `nflb cluster status` shows, for the journal (and lab tests).
  agent.on("change", (s) => ctx.log.info({ node: agent.node, cluster: s }, "cluster state"));
  agent.on("config", (_c, version) => ctx.log.info({ node: agent.node, version }, "cluster config running"));
  agent.on("config-refused", (r) =>
    ctx.log.error(
      { node: agent.node, version: r.version, reason: r.message },
      "cluster: pushed config refused",
    ),
  );
  return {
    start: () => agent.start(),
    stop: () => agent.stop({ leave: true }),
    // The status API's `cluster` object is the agent's snapshot as is.
    snapshot: () => ({ ...agent.snapshot() }),
    on: (event, listener) => agent.on(event, (s) => listener({ ...s })),
    ownedElements: () => host.ownedElements(),
  };
}
