import { EventEmitter } from "node:events";
import type { Config } from "../config/schema.ts";
import { EtcdClient, prefixEnd } from "../system/etcd.ts";
import {
  claimAllowed,
  fenceTiming,
  outageRenewAllowed,
  renewal,
  type FenceMode,
  type FenceTiming,
} from "./fencing.ts";
import { nodeAddress, type ClusterHost } from "./host.ts";
import {
  assignmentKey,
  clusterPrefix,
  holdsKey,
  holdsPrefix,
  memberKey,
  parseView,
  type ClusterView,
  type MemberRecord,
} from "./keys.ts";
import { bucketsOf, rebalance, sameMembers } from "./ownership.ts";
import { validateShared } from "./shared-config.ts";
import { Witness, WITNESS_PORT } from "./witness.ts";

/** The status API's `cluster` object, plus what `nflb cluster status` and tests need. */
export interface ClusterSnapshot {
  node: string;
  members: {
    node: string;
    address: string;
    /** Buckets the member holds now (etcd `holds`). */
    buckets: number;
    /** Buckets the assignment gives it. */
    target: number;
    config_version: number | null;
    config_error: string | null;
  }[];
  /** Buckets this node's kernel accepts new connections for right now. */
  buckets_owned: number;
  config_version: number | null;
  buckets: number;
  owned: number[];
  mode: FenceMode;
  etcd: boolean;
}

export type ClusterAgentEvents = {
  change: [ClusterSnapshot];
  /** A pushed config passed validation and is now running (the daemon applies its other parts). */
  config: [Config, number];
  "config-refused": [{ version: number; message: string }];
  log: [string];
};

export interface ClusterAgentOptions {
  config: Config;
  /** This node's name; default `cluster.node`. */
  node?: string;
  host: ClusterHost;
  etcd?: EtcdClient;
  /** Address peers reach this node at; default the first non-VIP address of the cluster interface. */
  address?: string;
  witnessPort?: number;
  now?: () => number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sorted = (s: Iterable<number>) => [...s].sort((a, b) => a - b);
const sameSet = (a: Set<number>, b: Set<number>) => a.size === b.size && [...a].every((x) => b.has(x));

/**
 * One cluster member: registers under an etcd lease, keeps the bucket assignment current, hands
 * buckets over (release in the kernel before etcd, claim in etcd before the kernel) and renews
 * its kernel fence only while it may (fencing.ts). Every step runs on one serial queue.
 */
export class ClusterAgent extends EventEmitter<ClusterAgentEvents> {
  readonly node: string;
  private running: Config;
  private readonly name: string;
  private readonly host: ClusterHost;
  private readonly etcd: EtcdClient;
  private readonly now: () => number;
  private readonly witnessPort: number;
  private address: string | null;
  private timing: FenceTiming;
  private witness: Witness | null = null;

  private version: number | null = null;
  private configError: { version: number; message: string } | null = null;
  private readonly refused = new Set<number>();
  private leaseId: string | null = null;
  private lastOkSentAt: number | null = null;
  private etcdOk = false;
  private mode: FenceMode = "fenced";
  /** Buckets this node holds in etcd and may have in its kernel. */
  private held = new Set<number>();
  private kernelUntil = 0;
  private view: ClusterView | null = null;
  private lastNoEtcdReportAt = -Infinity;
  private lastReconcileAt = -Infinity;

  private queue: Promise<void> = Promise.resolve();
  private tickQueued = false;
  private kickTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private readonly watchAbort = new AbortController();
  private stopped = false;
  private lastSignature = "";

  constructor(o: ClusterAgentOptions) {
    super();
    const cl = o.config.cluster;
    if (!cl) throw new Error("cluster agent: the config has no `cluster` section");
    const node = o.node ?? cl.node;
    if (!node) throw new Error("cluster agent: no node name (cluster.node or --node)");
    this.node = node;
    this.running = { ...o.config, cluster: { ...cl, node } };
    this.name = cl.name;
    this.host = o.host;
    this.now = o.now ?? (() => performance.now());
    this.timing = fenceTiming(cl.lease);
    this.etcd = o.etcd ?? new EtcdClient(cl.etcd, { timeoutMs: Math.max(300, this.timing.tickMs) });
    this.address = o.address ?? null;
    this.witnessPort = o.witnessPort ?? WITNESS_PORT;
  }

  private get cl() {
    const cl = this.running.cluster;
    if (!cl) throw new Error("unreachable: running config lost its cluster section");
    return cl;
  }

  async start(): Promise<void> {
    if (!this.address) {
      this.address = nodeAddress(await this.host.facts(), this.cl.interface, this.cl.vip);
      if (!this.address)
        throw new Error(`cluster agent: ${this.cl.interface} has no address of its own besides the VIP`);
    }
    await this.host.setup(this.running, null);
    this.witness = new Witness(
      this.name,
      this.node,
      { address: this.address, port: this.witnessPort },
      this.now,
    );
    await this.witness.start();
    this.tickTimer = setInterval(() => this.scheduleTick(), this.timing.tickMs);
    this.scheduleTick();
    void this.watchLoop();
  }

  /** Stop. With `leave` (default) hand every bucket over at once: kernel first, then the lease. */
  async stop(opts: { leave?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.tickTimer);
    clearTimeout(this.kickTimer);
    this.watchAbort.abort();
    await this.queue;
    if ((opts.leave ?? true) && this.leaseId) {
      this.held.clear();
      await this.host.setOwned({ buckets: [], timeoutMs: 0 }).catch(() => undefined);
      this.kernelUntil = 0;
      await this.etcd.leaseRevoke(this.leaseId).catch(() => undefined);
      this.leaseId = null;
    }
    this.witness?.stop();
    this.emitChange(true);
  }

  snapshot(): ClusterSnapshot {
    const v = this.view;
    const members = v
      ? [...v.members.values()]
          .sort((a, b) => (a.node < b.node ? -1 : 1))
          .map((m) => ({
            node: m.node,
            address: m.address,
            buckets: v.holds.get(m.node)?.size ?? 0,
            target: bucketsOf(v.assignment, m.node).length,
            config_version: m.config_version,
            config_error: m.config_error ? `v${m.config_error.version}: ${m.config_error.message}` : null,
          }))
      : [];
    const live = this.now() < this.kernelUntil;
    return {
      node: this.node,
      members,
      buckets_owned: live ? this.held.size : 0,
      config_version: this.version,
      buckets: this.cl.buckets,
      owned: live ? sorted(this.held) : [],
      mode: this.mode,
      etcd: this.etcdOk,
    };
  }

  get config(): Config {
    return this.running;
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    this.queue = this.queue
      .then(fn)
      .catch((e: unknown) => this.log(`error: ${e instanceof Error ? e.message : String(e)}`));
    return this.queue;
  }

  private log(msg: string): void {
    this.emit("log", msg);
  }

  private scheduleTick(): void {
    if (this.tickQueued || this.stopped) return;
    this.tickQueued = true;
    void this.serial(async () => {
      this.tickQueued = false;
      await this.tick();
    });
  }

  /** Re-read etcd soon (after a watch event, or to retry a lost race). */
  private kick(delayMs = 10): void {
    if (this.kickTimer || this.stopped) return;
    this.kickTimer = setTimeout(() => {
      this.kickTimer = undefined;
      void this.serial(() => this.reconcile());
    }, delayMs);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    if (!this.leaseId) {
      await this.register().catch((e: unknown) => {
        this.etcdOk = false;
        this.log(`register: ${e instanceof Error ? e.message : String(e)}`);
      });
    } else {
      const sentAt = this.now();
      try {
        const ttl = await this.etcd.leaseKeepAlive(this.leaseId, Math.floor(this.timing.tickMs * 0.8));
        this.etcdOk = true;
        if (ttl <= 0) {
          await this.leaseLost();
          return;
        }
        this.lastOkSentAt = sentAt;
        this.timing = { ...this.timing, grantedMs: ttl * 1000 };
      } catch {
        if (this.etcdOk)
          this.log("etcd unreachable: keeping the last ownership while the kernel fence allows");
        this.etcdOk = false;
      }
    }
    await this.pushKernel();
    this.report();
    if (this.etcdOk && this.leaseId && this.now() - this.lastReconcileAt > 1000) await this.reconcile();
    this.emitChange();
  }

  private async register(): Promise<void> {
    const sentAt = this.now();
    const g = await this.etcd.leaseGrant(this.cl.lease / 1000);
    this.timing = fenceTiming(this.cl.lease, g.ttl * 1000);
    const old = await this.etcd.get(memberKey(this.name, this.node));
    if (old) {
      // An earlier incarnation of this node (its kernel state was replaced at start): free its buckets now.
      const lease = (JSON.parse(old.value || "{}") as { lease?: string }).lease;
      if (lease && lease !== g.id) await this.etcd.leaseRevoke(lease);
    }
    this.leaseId = g.id;
    this.lastOkSentAt = sentAt;
    this.etcdOk = true;
    this.held.clear();
    await this.putMember();
    this.log(`registered with lease ${g.id} (ttl ${g.ttl}s)`);
    await this.reconcile();
  }

  private async leaseLost(): Promise<void> {
    this.log("lease expired: dropping every bucket and registering again");
    this.held.clear();
    await this.host.setOwned({ buckets: [], timeoutMs: 0 });
    this.kernelUntil = 0;
    this.leaseId = null;
    this.lastOkSentAt = null;
    this.mode = "fenced";
    await this.register();
  }

  private async putMember(): Promise<void> {
    if (!this.leaseId || !this.address) return;
    const rec: MemberRecord = {
      node: this.node,
      address: this.address,
      lease: this.leaseId,
      config_version: this.version,
      config_error: this.configError,
      started_at: new Date().toISOString(),
    };
    await this.etcd.put(memberKey(this.name, this.node), JSON.stringify(rec), { lease: this.leaseId });
  }

  /** Tell the kernel what to accept, for as long as the fence allows (never longer). */
  private async pushKernel(): Promise<void> {
    const now = this.now();
    const view = this.view ? [...this.view.members.keys()] : [];
    const outageAllowed =
      this.witness !== null && outageRenewAllowed(this.timing, this.node, view, this.witness.reports, now);
    const r = renewal(
      this.timing,
      { lastOkSentAt: this.lastOkSentAt, etcdOk: this.etcdOk, outageAllowed },
      now,
    );
    if (r.mode !== this.mode) this.log(`fence mode ${this.mode} → ${r.mode}`);
    this.mode = r.mode;
    // Fenced: rewrite only to shrink, keeping the old expiry; never extend.
    const until = r.until ?? this.kernelUntil;
    const timeoutMs = Math.floor(until - this.now());
    if (r.until === null && timeoutMs <= 0 && this.kernelUntil === 0) return;
    await this.host.setOwned({
      buckets: timeoutMs > 0 ? sorted(this.held) : [],
      timeoutMs: Math.max(0, timeoutMs),
    });
    this.kernelUntil = timeoutMs > 0 ? until : 0;
  }

  private report(): void {
    if (!this.witness || !this.view) return;
    const peers = [...this.view.members.values()].filter((m) => m.node !== this.node).map((m) => m.address);
    if (!this.etcdOk) this.lastNoEtcdReportAt = this.now();
    this.witness.send(peers, this.etcdOk);
  }

  private async watchLoop(): Promise<void> {
    const prefix = clusterPrefix(this.name);
    while (!this.stopped) {
      try {
        await this.etcd.watch(prefix, prefixEnd(prefix), {
          signal: this.watchAbort.signal,
          onEvents: () => this.kick(),
        });
      } catch {
        // etcd down or restarted: the tick notices; re-open after a pause
      }
      if (this.stopped) break;
      await sleep(this.timing.tickMs);
      this.kick();
    }
  }

  /** Read the whole cluster prefix and take one step towards the assignment. */
  private async reconcile(): Promise<void> {
    if (this.stopped || !this.leaseId) return;
    let view: ClusterView;
    try {
      const r = await this.etcd.rangePrefix(clusterPrefix(this.name));
      view = parseView(this.name, r.revision, r.kvs);
    } catch (e) {
      this.log(`reconcile: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    this.view = view;
    this.lastReconcileAt = this.now();
    const lease = this.leaseId;
    if (!view.members.has(this.node)) {
      await this.putMember();
      return this.kick();
    }
    await this.handleConfig(view);

    const B = this.cl.buckets;
    const live = [...view.members.keys()].sort();
    const a = view.assignment;
    if (!a || a.buckets !== B || !sameMembers(a.members, live)) {
      const next = rebalance(a, live, B);
      await this.etcd.txn({
        compare: [
          { key: assignmentKey(this.name), target: "mod", result: "equal", modRevision: view.assignmentMod },
        ],
        success: [{ put: { key: assignmentKey(this.name), value: JSON.stringify(next) } }],
      });
      return this.kick();
    }
    const target = new Set(bucketsOf(a, this.node));
    const inEtcd = view.holds.get(this.node) ?? new Set<number>();

    // The kernel never holds what etcd does not say this node holds.
    const confirmed = new Set([...this.held].filter((b) => inEtcd.has(b)));
    const release = [...confirmed].filter((b) => !target.has(b));
    if (confirmed.size !== this.held.size || release.length > 0) {
      for (const b of release) confirmed.delete(b);
      this.held = confirmed;
      await this.pushKernel(); // kernel first …
      await this.etcd.put(holdsKey(this.name, this.node), JSON.stringify({ buckets: sorted(confirmed) }), {
        lease,
      });
      if (release.length) this.log(`released ${release.length} bucket(s)`);
      this.emitChange();
      return this.kick();
    }

    const others = new Set<number>();
    for (const [n, s] of view.holds) if (n !== this.node) for (const b of s) others.add(b);
    const free = [...target].filter((b) => !this.held.has(b) && !others.has(b));
    const now = this.now();
    const mayClaim =
      free.length > 0 &&
      claimAllowed(this.timing, this.lastNoEtcdReportAt, now) &&
      renewal(
        this.timing,
        { lastOkSentAt: this.lastOkSentAt, etcdOk: this.etcdOk, outageAllowed: false },
        now,
      ).mode === "normal";
    const want = new Set([...this.held, ...(mayClaim ? free : [])]);
    if (sameSet(want, inEtcd)) {
      if (free.length > 0 && !mayClaim) this.kick(this.timing.tickMs);
      return;
    }
    // … and etcd first when claiming: the put only succeeds if no holds changed since the read.
    const hp = holdsPrefix(this.name);
    const t = await this.etcd.txn({
      compare: [
        { key: hp, rangeEnd: prefixEnd(hp), target: "mod", result: "less", modRevision: view.revision + 1 },
      ],
      success: [
        {
          put: {
            key: holdsKey(this.name, this.node),
            value: JSON.stringify({ buckets: sorted(want) }),
            lease,
          },
        },
      ],
    });
    if (!t.succeeded) return this.kick(10 + Math.floor(Math.random() * 40));
    const gained = want.size - this.held.size;
    this.held = want;
    await this.pushKernel();
    if (gained > 0) this.log(`claimed ${gained} bucket(s)`);
    this.emitChange();
    if (free.length > 0 && !mayClaim) this.kick(this.timing.tickMs);
  }

  private async handleConfig(view: ClusterView): Promise<void> {
    const sc = view.config;
    if (!sc || sc.version === this.version || this.refused.has(sc.version)) return;
    const facts = await this.host.facts();
    const v = validateShared(sc.text, this.running, this.node, facts);
    let message: string | null = v.ok ? null : v.message;
    if (v.ok) {
      try {
        await this.host.setup(v.config, {
          buckets: sorted(this.held),
          timeoutMs: Math.max(0, this.kernelUntil - this.now()),
        });
      } catch (e) {
        message = e instanceof Error ? e.message : String(e);
      }
    }
    if (message !== null || !v.ok) {
      this.refused.add(sc.version);
      this.configError = { version: sc.version, message: message ?? "invalid" };
      this.log(`refused config v${sc.version}: ${this.configError.message}`);
      this.emit("config-refused", this.configError);
    } else {
      this.running = v.config;
      this.version = sc.version;
      this.configError = null;
      this.log(`running config v${sc.version}`);
      this.emit("config", v.config, sc.version);
    }
    await this.putMember();
  }

  private emitChange(force = false): void {
    const s = this.snapshot();
    const sig = JSON.stringify([s.members, s.buckets_owned, s.config_version, s.mode, s.etcd]);
    if (!force && sig === this.lastSignature) return;
    this.lastSignature = sig;
    this.emit("change", s);
  }
}
