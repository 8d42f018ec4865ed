import type { KeyObject } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Config } from "../config/schema.ts";
import { EtcdClient, EtcdError, prefixEnd } from "../system/etcd.ts";
import {
  claimAllowed,
  fenceTiming,
  outageRenewAllowed,
  renewal,
  reportMaxAge,
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
  membersPrefix,
  paramsKey,
  parseParams,
  memberRows,
  parseView,
  sameParams,
  type ClusterParams,
  type ClusterView,
  type MemberRecord,
} from "./keys.ts";
import { bucketsOf, rebalance, sameMembers } from "./ownership.ts";
import { clusterEtcdClient, readPushPublicKey, readSharedKey } from "./secrets.ts";
import { MAX_PUSHED_BYTES, validateShared } from "./shared-config.ts";
import { verifyConfig } from "./signing.ts";
import { Witness, WITNESS_PORT, type WitnessRejection } from "./witness.ts";

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
  /** Why this node is not a member (its buckets/hash differ from the cluster's), or null. */
  error: string | null;
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
  /** Default: a client built from `cluster.etcd`, `etcd_tls` and `etcd_auth` at start. */
  etcd?: EtcdClient;
  /** Witness secret; default read from `cluster.key_file` at start (none: no witness, no outage mode). */
  sharedKey?: Buffer | null;
  /** Public key pushed configs must verify with; default `cluster.push_public_key` (none: refuse pushes). */
  pushKey?: KeyObject | null;
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
  private etcdClient: EtcdClient | undefined;
  private sharedKey: Buffer | null | undefined;
  private pushKey: KeyObject | null | undefined;
  /** Set while this node refuses to join (its buckets/hash differ from the cluster's). */
  private joinError: string | null = null;
  private lastJoinLog = "";
  private readonly rejectLogAt = new Map<string, number>();
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
  private lastJoinCheck = -Infinity;

  private queue: Promise<void> = Promise.resolve();
  private tickQueued = false;
  private kickTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private readonly watchAbort = new AbortController();
  /** The open watch stream's own abort: a stream that lived through an outage is replaced (restartWatchIfSuspect). */
  private watchStream: AbortController | null = null;
  /** etcd failed since the watch stream was opened: reopen it once etcd answers again. */
  private watchSuspect = false;
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
    this.etcdClient = o.etcd;
    this.sharedKey = o.sharedKey;
    this.pushKey = o.pushKey;
    this.address = o.address ?? null;
    this.witnessPort = o.witnessPort ?? WITNESS_PORT;
  }

  private get etcd(): EtcdClient {
    if (!this.etcdClient) throw new Error("cluster agent: not started");
    return this.etcdClient;
  }

  private get cl() {
    const cl = this.running.cluster;
    if (!cl) throw new Error("unreachable: running config lost its cluster section");
    return cl;
  }

  async start(): Promise<void> {
    const cl = this.cl;
    this.etcdClient ??= await clusterEtcdClient(cl, { timeoutMs: Math.max(300, this.timing.tickMs) });
    if (this.sharedKey === undefined) this.sharedKey = cl.key_file ? await readSharedKey(cl.key_file) : null;
    if (this.pushKey === undefined)
      this.pushKey = cl.push_public_key ? await readPushPublicKey(cl.push_public_key) : null;
    if (!this.sharedKey)
      this.log("no cluster.key_file: witness reports are off; a node that loses etcd fences itself at once");
    if (!this.pushKey) this.log("no cluster.push_public_key: configs pushed through etcd are refused");
    if (!this.address) {
      this.address = nodeAddress(await this.host.facts(), this.cl.interface, this.cl.vip);
      if (!this.address)
        throw new Error(`cluster agent: ${this.cl.interface} has no address of its own besides the VIP`);
    }
    await this.host.setup(this.running, null);
    if (this.sharedKey) {
      this.witness = new Witness(
        this.name,
        this.node,
        { address: this.address, port: this.witnessPort },
        {
          key: this.sharedKey,
          addressOf: (n) => this.view?.members.get(n)?.address,
          windowMs: Math.max(1000, reportMaxAge(this.timing)),
          onReject: (why, n) => this.witnessRejected(why, n),
        },
        this.now,
      );
      await this.witness.start();
    }
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
      ? memberRows(v).map((m) => ({
          ...m,
          config_error: m.config_error ? `v${m.config_error.version}: ${m.config_error.message}` : null,
        }))
      : [];
    const live = this.now() < this.kernelUntil;
    return {
      error: this.joinError,
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
    this.queue = this.queue.then(fn).catch((e: unknown) => {
      this.log(`error: ${e instanceof Error ? e.message : String(e)}`);
      // etcd dropped our lease (it expired while we could not reach it): the next keep-alive
      // confirms and registers again; do not wait for the tick timer to find out.
      if (e instanceof EtcdError && /lease not found/i.test(e.message)) this.scheduleTick();
    });
    return this.queue;
  }

  private log(msg: string): void {
    this.emit("log", msg);
  }

  /** A refused witness report: logged at most once per 30 s per reason and sender. */
  private witnessRejected(why: WitnessRejection, node: string | null): void {
    const k = `${why}/${node ?? "?"}`;
    const now = this.now();
    if (now - (this.rejectLogAt.get(k) ?? -Infinity) < 30_000) return;
    this.rejectLogAt.set(k, now);
    this.log(`witness: ignored a report${node ? ` claiming to be from ${node}` : ""}: ${why}`);
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
        this.watchSuspect = true;
        this.log(`register: ${e instanceof Error ? e.message : String(e)}`);
      });
    } else {
      const sentAt = this.now();
      try {
        const ttl = await this.etcd.leaseKeepAlive(this.leaseId, Math.floor(this.timing.tickMs * 0.8));
        this.etcdOk = true;
        this.restartWatchIfSuspect();
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
        this.watchSuspect = true;
      }
    }
    await this.pushKernel();
    this.report();
    if (this.etcdOk && this.leaseId && this.now() - this.lastReconcileAt > 1000) await this.reconcile();
    this.emitChange();
  }

  /**
   * The cluster's buckets and hash, recorded by the member that created it. A node with other
   * values refuses to join (it would rewrite the assignment in a loop and split every bucket);
   * when no member runs at all, the cluster is re-created with this node's values.
   */
  private async checkParams(): Promise<boolean> {
    const mine: ClusterParams = { buckets: this.cl.buckets, hash: this.cl.hash };
    const key = paramsKey(this.name);
    const cur = await this.etcd.get(key);
    const recorded = cur ? parseParams(cur.value) : null;
    if (sameParams(recorded, mine)) return this.joined();
    const mp = membersPrefix(this.name);
    const noMember = {
      key: mp,
      rangeEnd: prefixEnd(mp),
      target: "create",
      result: "equal",
      createRevision: 0,
    } as const;
    const t = await this.etcd.txn({
      // Absent: create it. Present but different: only while no member key exists at all (an
      // empty range compares as create revision 0), i.e. nobody runs the old partitioning.
      compare: [
        { key, target: "mod", result: "equal", modRevision: cur?.modRevision ?? 0 },
        ...(cur ? [noMember] : []),
      ],
      success: [{ put: { key, value: JSON.stringify(mine) } }],
    });
    if (t.succeeded) {
      if (cur)
        this.log(
          `no member runs: cluster ${this.name} re-created with ${paramsText(mine)} (was ${recorded ? paramsText(recorded) : "unreadable"})`,
        );
      return this.joined();
    }
    // Lost a race: someone else wrote it meanwhile.
    const now = await this.etcd.get(key);
    const seen = now ? parseParams(now.value) : null;
    if (sameParams(seen, mine)) return this.joined();
    this.setJoinError(mismatchText(this.name, seen ?? recorded, mine));
    return false;
  }

  private joined(): true {
    this.setJoinError(null);
    return true;
  }

  private setJoinError(msg: string | null): void {
    this.joinError = msg;
    if (msg && msg !== this.lastJoinLog) this.log(msg);
    this.lastJoinLog = msg ?? "";
  }

  /** Leave at once (kernel first, then the lease) and stay out: the cluster's parameters differ. */
  private async refuseJoin(msg: string): Promise<void> {
    this.setJoinError(msg);
    this.held.clear();
    await this.host.setOwned({ buckets: [], timeoutMs: 0 });
    this.kernelUntil = 0;
    const lease = this.leaseId;
    this.leaseId = null;
    this.lastOkSentAt = null;
    this.mode = "fenced";
    this.view = null;
    if (lease) await this.etcd.leaseRevoke(lease).catch(() => undefined);
    this.emitChange();
  }

  private async register(): Promise<void> {
    // Refused: retry every few seconds (the cluster may be re-created), serve nothing meanwhile.
    if (this.joinError && this.now() - this.lastJoinCheck < 5000) return;
    this.lastJoinCheck = this.now();
    if (!(await this.checkParams())) {
      this.etcdOk = true;
      return;
    }
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
    this.restartWatchIfSuspect();
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
      const stream = new AbortController();
      this.watchStream = stream;
      try {
        await this.etcd.watch(prefix, prefixEnd(prefix), {
          signal: AbortSignal.any([this.watchAbort.signal, stream.signal]),
          onEvents: () => this.kick(),
        });
      } catch {
        // etcd down or restarted: the tick notices; re-open after a pause
      }
      if (this.stopped) break;
      // Replaced on purpose (restartWatchIfSuspect): at once; otherwise after a pause.
      if (!stream.signal.aborted) await sleep(this.timing.tickMs);
      this.kick();
    }
  }

  /**
   * etcd answers again after failing: the watch stream opened before may be one the outage left
   * silent (its socket in retransmit back-off, or half-open after a cut link), and no error ever
   * ends it. Open a new one; the events in between are read by the reconcile that follows.
   */
  private restartWatchIfSuspect(): void {
    if (!this.watchSuspect) return;
    this.watchSuspect = false;
    this.watchStream?.abort();
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
    const mine = { buckets: this.cl.buckets, hash: this.cl.hash };
    if (view.params && !sameParams(view.params, mine))
      return this.refuseJoin(mismatchText(this.name, view.params, mine));
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
    if (sameSet(want, inEtcd) && (inEtcd.size === 0 || view.holdsLease.get(this.node) === lease)) {
      // etcd already records this claim, under this lease: a claim txn etcd applied whose answer
      // was lost (it came after the time limit). Take it as won, or those buckets would stay in
      // etcd as this node's, unserved by it and never claimed by anybody else.
      if (want.size > this.held.size) {
        const gained = want.size - this.held.size;
        this.held = want;
        await this.pushKernel();
        this.log(`claimed ${gained} bucket(s) (etcd had recorded the claim; its answer was lost)`);
        this.emitChange();
      }
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

  /** Why a pushed record may not even be read, or null: who signed it, and whether it is new. */
  private pushRefusal(sc: NonNullable<ClusterView["config"]>): string | null {
    if (!this.pushKey) return "this node has no cluster.push_public_key: pushed configs are refused";
    if (!sc.signature) return "unsigned (nflb cluster push --signing-key signs it)";
    if (sc.text.length > MAX_PUSHED_BYTES) return `larger than ${MAX_PUSHED_BYTES} bytes`;
    if (!verifyConfig(this.pushKey, this.name, sc.version, sc.text, sc.signature))
      return "bad signature (not signed by the key of cluster.push_public_key, or not for this version and cluster)";
    if (this.version !== null && sc.version < this.version)
      return `older than the running v${this.version} (a replay)`;
    return null;
  }

  private async handleConfig(view: ClusterView): Promise<void> {
    const sc = view.config;
    if (!sc || sc.version === this.version || this.refused.has(sc.version)) return;
    const early = this.pushRefusal(sc);
    const facts = early === null ? await this.host.facts() : null;
    const v =
      early === null
        ? validateShared(sc.text, this.running, this.node, facts)
        : ({ ok: false, message: early } as const);
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
    const sig = JSON.stringify([s.members, s.buckets_owned, s.config_version, s.mode, s.etcd, s.error]);
    if (!force && sig === this.lastSignature) return;
    this.lastSignature = sig;
    this.emit("change", s);
  }
}

const paramsText = (p: ClusterParams) => `${p.buckets} buckets, hash ${p.hash}`;

function mismatchText(name: string, cluster: ClusterParams | null, mine: ClusterParams): string {
  return `refused to join cluster ${name}: it uses ${cluster ? paramsText(cluster) : "other (unreadable) parameters"}, this node has ${paramsText(mine)}; serving nothing (change it with every member stopped)`;
}
