import {
  hasUdpServices,
  udpBackendsGoneDown,
  type PinnedFlows,
  type ServicesPlan,
} from "../plan/services.ts";
import type { Config } from "../config/schema.ts";
import { desiredState, type Desired, type HealthView } from "../plan/desired.ts";
import type { Facts, Health, UplinkPlan } from "../plan/types.ts";
import { removedSlots } from "../plan/uplink-ids.ts";
import { uplinkMark } from "../config/marks.ts";
import { TABLE_REF } from "../nft/names.ts";
import type { SlotFacts } from "../apply/uplink-slots.ts";
import { allUp, layoutOf } from "../plan/uplinks.ts";
import { stickyMaps } from "../plan/nft-uplinks.ts";
import { findObject, tableRef, withElements, type Element, type Ruleset } from "../nft/model.ts";
import type { StickyElement } from "../system/conntrack-marks.ts";
import { diff } from "../nft/diff.ts";
import { serialize } from "../nft/serialize.ts";
import { parseDuration } from "../config/duration.ts";
import type { Log } from "./log.ts";

/** What the reconciler needs to know at the moment it runs; read fresh on every run. */
export interface ReconcileInput {
  config: Config;
  health: HealthView;
  /** Uplinks the probes call down (not merely disabled): what `flush_on_down` acts on. */
  probeDown: ReadonlySet<string>;
  /** Uplinks whose IPv4 or IPv6 alone the probes call down (`isp1/6`): `flush_on_down` of that family. */
  probeDownFamilies?: ReadonlySet<string>;
  /**
   * Elements of sets another writer owns (`owner: "external"`), as they must be at this moment:
   * a full replace writes them in the same transaction (the cluster's owned buckets with what is
   * left of their fence timeouts). A diff never touches them.
   */
  external?: () => ExternalElements[];
}

export interface ExternalElements {
  /** `family name` of the table. */
  table: string;
  set: string;
  elements: readonly Element[];
}

function learnsGateways(c: Config): boolean {
  return Object.values(c.uplinks ?? {}).some((u) => u.gateway === undefined || u.gateway === "auto");
}

/** The kernel side, injected so the loop can be tested against a fake. */
export interface DataplaneOps {
  /**
   * `gateways`: also learn default gateways from the routes (some uplink's gateway is auto or
   * omitted). `reuse`: the run changes services only, so the last read may serve when nothing on
   * the links can have changed since (src/daemon/facts-cache.ts); a plain read ignores it.
   */
  readFacts(opts?: { gateways: boolean; reuse?: boolean }): Promise<Facts>;
  /**
   * Routing + sysctls as `nflb apply` does, with `nftScript` as the nft transaction: the whole
   * table when omitted, or the diff from what the kernel holds (a reload).
   */
  applyFull(d: Desired, nftScript?: string): Promise<void>;
  /** One nft transaction (a diff of the model). */
  applyNft(script: string): Promise<void>;
  /** Only the policy routing of `d` (moves the primary's default route). */
  applyRouting(d: Desired): Promise<void>;
  tableExists(): Promise<boolean>;
  /** Delete conntrack entries with the mark, of both families or only `family`. */
  flushConntrack(mark: number, mask: number, family?: 4 | 6): Promise<number>;
  purgeSticky(maps: string[], mark: number, mask: number): Promise<number>;
  /**
   * The uplink slots to plan with when the config changed (src/apply/uplink-slots.ts): `previous`
   * (the slots in force), or the state file's when null (the first run); with the slots conntrack
   * holds when a name is new. Without it: `previous` alone.
   */
  slotFacts?(c: Config, previous: Readonly<Record<string, number>> | null): Promise<SlotFacts>;
  /**
   * The live elements of these packet-written maps (sticky choices), with what is left of their
   * timeouts: a full replace writes them into the new table in the same transaction.
   */
  readSticky?(maps: string[]): Promise<Map<string, StickyElement[]>>;
  /**
   * The first plan's stand-in for a previous one: the maglev slots the kernel holds
   * (src/plan/maglev-seed.ts), so a restart with the config in force moves no client.
   */
  servicesSeed?(c: Config): Promise<ServicesPlan | null>;
  /** Delete a UDP service's conntrack entries pinned to one backend; how many went. */
  deleteBackendFlows?(f: PinnedFlows["flows"], to: PinnedFlows["to"]): Promise<number>;
}

export interface Applied {
  config: Config;
  /** What the kernel holds (as far as nflb wrote it); null when unknown (after a failure): replace it all. */
  model: Ruleset | null;
  /** The last in-place transaction sent ("" when the last change replaced the table). */
  update: string;
  routingKey: string;
  desired: Desired;
  /** The health the kernel now reflects (the kept one while every uplink is down). */
  health: HealthView;
  at: Date;
  kind: "full" | "update";
}

export interface Forgotten {
  uplink: string;
  conntrack: number;
  sticky: number;
  /** Only this family's connections were forgotten (the uplink's other family is live). */
  family?: 4 | 6;
}

export interface ReconcileResult {
  action: "full" | "update" | "none" | "failed";
  reasons: string[];
  seconds: number;
  /** Every configured uplink is down and the last data plane is kept. */
  keeping: boolean;
  forgotten: Forgotten[];
  error?: Error;
}

export interface ReconcilerHooks {
  log: Log;
  onApply?: (kind: "full" | "update", seconds: number) => void;
  /** Entering or leaving "every uplink down; keeping the last data plane". */
  onKeeping?: (keeping: boolean, reasons: string[]) => void;
  /** After every run: why it failed (the old data plane still serves; a retry is scheduled), or null. */
  onOutcome?: (error: string | null) => void;
}

export interface ReconcileOptions {
  /** Replace the whole table even when an update would do. */
  force?: boolean;
  /** Check that the table still exists (someone may have flushed the ruleset). */
  verify?: boolean;
  /** A routine re-plan (least-conn counts moved): its update is logged at debug, not info. */
  quiet?: boolean;
  /**
   * Only services changed (a backend's health, weight, drain or maint; least-conn counts): the
   * host's interfaces need not be read again when nothing on the links changed since the last
   * read. Coalesced runs keep it only when every request had it.
   */
  servicesOnly?: boolean;
}

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

/**
 * The one place that changes the kernel at runtime. Runs are serialized; requests that arrive
 * during a run are coalesced into the next one. Every run plans the whole model and applies its
 * diff from the model last applied (src/nft/diff.ts): a health change is a few elements, a reload
 * the objects that changed (with routing and sysctls reconciled as `apply` does). The first run,
 * a forced one (retry after a failure) and one that finds the table gone replace the table.
 */
export class Reconciler {
  private applied: Applied | null = null;
  private keeping = false;
  private probeDownSeen: ReadonlySet<string> | null = null;
  private familyDownSeen: ReadonlySet<string> | null = null;
  private current: Promise<ReconcileResult> | null = null;
  private next: { reasons: string[]; opts: ReconcileOptions; promise: Promise<ReconcileResult> } | null =
    null;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = RETRY_MIN_MS;
  private closed = false;
  /** Every kernel change of the daemon goes through here, one at a time (see exclusive). */
  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly source: () => ReconcileInput,
    private readonly ops: DataplaneOps,
    private readonly hooks: ReconcilerHooks,
  ) {}

  get last(): Applied | null {
    return this.applied;
  }

  get keepingLast(): boolean {
    return this.keeping;
  }

  /** Resolves with the result of a run that started after this call. */
  reconcile(reason: string, opts: ReconcileOptions = {}): Promise<ReconcileResult> {
    if (this.next) {
      this.next.reasons.push(reason);
      this.next.opts = merge(this.next.opts, opts);
      return this.next.promise;
    }
    if (!this.current) return this.start([reason], opts);
    const queued = { reasons: [reason], opts, promise: undefined as unknown as Promise<ReconcileResult> };
    queued.promise = this.current.then(() => {
      this.next = null;
      return this.start(queued.reasons, queued.opts);
    });
    this.next = queued;
    return queued.promise;
  }

  /**
   * Run `fn` with the kernel to itself: no reconcile run starts or is in progress meanwhile. The
   * cluster agent's bucket updates go through here, so a full replace computed before an update
   * can never be applied after it (it would bring back buckets the agent had just released).
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.lock.then(fn, fn);
    this.lock = p.catch(() => undefined);
    return p;
  }

  /** Wait until nothing is running or queued. */
  async idle(): Promise<void> {
    while (this.current || this.next) await (this.next?.promise ?? this.current);
  }

  /** Stop retrying; a run in progress finishes. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.idle();
  }

  private start(reasons: string[], opts: ReconcileOptions): Promise<ReconcileResult> {
    const p = this.exclusive(() => this.runOnce(reasons, opts)).finally(() => {
      if (this.current === p) this.current = null;
    });
    this.current = p;
    return p;
  }

  private async runOnce(reasons: string[], opts: ReconcileOptions): Promise<ReconcileResult> {
    const t0 = performance.now();
    const result = (action: ReconcileResult["action"], extra: Partial<ReconcileResult> = {}) => ({
      action,
      reasons,
      seconds: (performance.now() - t0) / 1000,
      keeping: this.keeping,
      forgotten: [],
      ...extra,
    });
    const { log } = this.hooks;
    let kind: "full" | "update" | null = null;
    try {
      const input = this.source();
      const tInput = performance.now();
      const c = input.config;
      const reuse =
        opts.servicesOnly === true &&
        opts.force !== true &&
        opts.verify !== true &&
        this.applied?.config === c &&
        this.applied.model !== null;
      const facts = await this.ops.readFacts({ gateways: learnsGateways(c), ...(reuse ? { reuse } : {}) });
      const tFacts = performance.now();
      const cpuPlan = process.cpuUsage();
      const names = Object.keys(c.uplinks ?? {});
      const keeping = names.length > 0 && !names.some((n) => input.health.uplinks[n]?.up);
      const health: HealthView = keeping ? { ...input.health, uplinks: this.keptUplinks(c) } : input.health;
      const prev = this.applied;
      const before = this.slotsInForce();
      const slots: SlotFacts =
        prev?.config === c
          ? { uplinkSlots: before ?? {} }
          : ((await this.ops.slotFacts?.(c, before)) ?? { uplinkSlots: before ?? {} });
      const previous = prev ? prev.desired.services : ((await this.ops.servicesSeed?.(c)) ?? null);
      const desired = desiredState(c, health, { ...facts, ...slots }, previous);
      const removed = desired.uplinks
        ? removedSlots(slots.uplinkSlots ?? {}, slotsOf(desired.uplinks))
        : Object.entries(slots.uplinkSlots ?? {});
      const routingKey = JSON.stringify(desired.routing);
      const missing = opts.verify === true && prev !== null && !(await this.ops.tableExists());
      if (missing) log.warn({ reason: reasons.join("; ") }, "table inet nflb is gone; installing it again");

      const d = prev?.model && !opts.force && !missing ? diff(prev.model, desired.model) : null;
      const t1 = performance.now();
      const planCpu = process.cpuUsage(cpuPlan);
      let tNft = t1;
      let update = "";
      if (d && d.replaced.length === 0 && prev?.config === c) {
        update = d.script;
        if (update) await this.ops.applyNft(update);
        tNft = performance.now();
        if (prev.routingKey !== routingKey) await this.ops.applyRouting(desired);
        if (update || prev.routingKey !== routingKey) kind = "update";
      } else if (d && d.replaced.length === 0) {
        // A reload: the objects that changed, in one transaction; sticky maps, counters and the
        // other services' positions stay. Routing and sysctls as a full apply reconciles them.
        update = d.script;
        await this.ops.applyFull(desired, update);
        kind = "full";
      } else {
        if (d) log.info({ replaced: d.replaced }, "the table changes shape; replacing it");
        let model = desired.model;
        for (const x of input.external?.() ?? []) model = withElements(model, x.table, x.set, x.elements);
        // What clients were pinned to stays pinned: the sticky maps' live elements go into the new
        // table in the same transaction (an uplink that is gone keeps none).
        if (desired.uplinks) model = await this.carrySticky(model, desired.uplinks);
        await this.ops.applyFull(desired, model === desired.model ? desired.nft : serialize(model));
        kind = "full";
      }
      const seconds = (performance.now() - t1) / 1000;
      if (kind) this.hooks.onApply?.(kind, seconds);
      this.retryMs = RETRY_MIN_MS;
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;

      this.applied = {
        config: c,
        model: desired.model,
        update,
        routingKey,
        desired,
        health,
        at: kind ? new Date() : (prev?.at ?? new Date()),
        kind: kind ?? prev?.kind ?? "full",
      };
      if (keeping !== this.keeping) {
        this.keeping = keeping;
        if (keeping)
          log.warn({ reason: reasons.join("; ") }, "all uplinks down; keeping the last data plane");
        else log.info({ reason: reasons.join("; ") }, "an uplink is live again; balancing resumes");
        this.hooks.onKeeping?.(keeping, reasons);
      }
      if (kind) {
        // Where the time went: the health view, reading the host, planning, the nft transaction, routing.
        const ms = (a: number, b: number) => Math.round((b - a) * 10) / 10;
        const timing =
          kind === "update"
            ? {
                input_ms: ms(t0, tInput),
                facts_ms: ms(tInput, tFacts),
                plan_ms: ms(tFacts, t1),
                // This process's CPU (all its threads, GC helpers too) while planning: on a busy
                // machine plan_ms is mostly waiting for a core.
                plan_cpu_ms: Math.round((planCpu.user + planCpu.system) / 100) / 10,
                nft_ms: ms(t1, tNft),
                routing_ms: ms(tNft, t1 + seconds * 1000),
              }
            : { input_ms: ms(t0, tInput), facts_ms: ms(tInput, tFacts), plan_ms: ms(tFacts, t1) };
        const fields = { kind, seconds, ...timing, reason: reasons.join("; ") };
        if (opts.quiet && kind === "update") log.debug(fields, `applied (${kind})`);
        else log.info(fields, `applied (${kind})`);
      }
      // Only after the new split is in place: connections of a dead uplink re-choose among live ones.
      this.hooks.onOutcome?.(null);
      const forgotten = await this.forget(prev, input, keeping);
      forgotten.push(...(await this.forgetRemoved(removed, desired.uplinks, c)));
      if (hasUdpServices(c)) await this.forgetUdpFlows(prev?.desired.services ?? null, desired.services);
      return result(kind ?? "none", { forgotten });
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      // The kernel may now hold something other than what we last recorded: next time replace it all.
      if (this.applied) this.applied = { ...this.applied, model: null };
      log.error({ err: error.message, reason: reasons.join("; ") }, "reconcile failed; will retry");
      this.hooks.onOutcome?.(error.message);
      this.scheduleRetry();
      return result("failed", { error });
    }
  }

  /** The slots of the last applied plan; null before anything was applied (the state file has them). */
  private slotsInForce(): Record<string, number> | null {
    const a = this.applied;
    if (!a) return null;
    return a.desired.uplinks ? slotsOf(a.desired.uplinks) : {};
  }

  /** `model` with the live elements of its sticky maps (those it declares), for uplinks that still exist. */
  private async carrySticky(model: Ruleset, plan: UplinkPlan): Promise<Ruleset> {
    const maps = stickyMaps(plan);
    if (!this.ops.readSticky || maps.length === 0) return model;
    const marks = new Set(plan.uplinks.map((u) => u.mark));
    const mask = plan.layout.mask;
    let live: Map<string, StickyElement[]>;
    try {
      live = await this.ops.readSticky(maps);
    } catch (e) {
      this.hooks.log.warn({ err: (e as Error).message }, "could not read the sticky maps; they start empty");
      return model;
    }
    let out = model;
    const table = model.tables.find((t) => tableRef(t) === TABLE_REF);
    for (const [name, elements] of live) {
      const map = table && findObject(table, "map", name);
      if (!map) continue;
      const kept = elements.filter((e) => marks.has((e.mark & mask) >>> 0));
      if (kept.length)
        out = withElements(
          out,
          TABLE_REF,
          name,
          kept.map((e) => carried(e, map.timeout)),
        );
    }
    return out;
  }

  /**
   * Uplinks the config no longer has: their connections (conntrack entries with their mark, and
   * only those) and sticky choices go, after the new table is in place. A restart with an uplink
   * removed from the config does the same (the state file names it).
   */
  private async forgetRemoved(
    removed: [string, number][],
    plan: UplinkPlan | null,
    c: Config,
  ): Promise<Forgotten[]> {
    const out: Forgotten[] = [];
    if (removed.length === 0) return out;
    // Every uplink removed: the config's mask still says which bits are nflb's.
    const layout = plan?.layout ?? layoutOf(c);
    const sticky = plan ? stickyMaps(plan) : [];
    for (const [name, slot] of removed) {
      const mark = uplinkMark(layout, slot);
      const moved = plan?.uplinks.some((u) => u.name === name) ?? false;
      const f: Forgotten = { uplink: name, conntrack: 0, sticky: 0 };
      try {
        if (sticky.length) f.sticky = await this.ops.purgeSticky(sticky, mark, layout.mask);
        f.conntrack = await this.ops.flushConntrack(mark, layout.mask);
        this.hooks.log.info(
          {
            uplink: name,
            mark: `0x${mark.toString(16)}`,
            conntrack: f.conntrack,
            sticky: f.sticky,
            reason: moved ? "uplink moved to another slot (an id pin)" : "uplink removed from the config",
          },
          moved ? "forgot the connections of a moved uplink" : "forgot the connections of a removed uplink",
        );
      } catch (e) {
        this.hooks.log.error({ uplink: name, err: (e as Error).message }, "could not forget connections");
      }
      out.push(f);
    }
    return out;
  }

  /** The uplink health the kernel reflects now, for names of the current config. */
  private keptUplinks(c: Config): Health {
    const prev = this.applied?.health.uplinks ?? {};
    const kept: Health = {};
    for (const n of Object.keys(c.uplinks ?? {})) kept[n] = prev[n] ?? { up: false };
    return Object.values(kept).some((h) => h.up) ? kept : allUp(c);
  }

  private async forget(prev: Applied | null, input: ReconcileInput, keeping: boolean): Promise<Forgotten[]> {
    const c = input.config;
    const seen = this.probeDownSeen;
    this.probeDownSeen = new Set(input.probeDown);
    const plan = this.applied?.desired.uplinks;
    if (!plan || !c.uplinks) return [];
    const liveBefore = new Set(prev?.desired.uplinks?.uplinks.filter((u) => u.live).map((u) => u.name));
    const sticky = stickyMaps(plan);
    const out: Forgotten[] = [];
    for (const u of plan.uplinks) {
      if (u.live) continue;
      // A first run has seen no transition: never flush what an earlier daemon left established.
      const wentDown = seen !== null && input.probeDown.has(u.name) && !seen.has(u.name);
      const flush = wentDown && c.balance.flush_on_down && !keeping;
      const purge = liveBefore.has(u.name) && sticky.length > 0;
      if (!flush && !purge) continue;
      const f: Forgotten = { uplink: u.name, conntrack: 0, sticky: 0 };
      try {
        if (purge) f.sticky = await this.ops.purgeSticky(sticky, u.mark, plan.layout.mask);
        if (flush) f.conntrack = await this.ops.flushConntrack(u.mark, plan.layout.mask);
        this.hooks.log.info(
          { uplink: u.name, conntrack: f.conntrack, sticky: f.sticky, reason: "uplink left the split" },
          "forgot the connections of a dead uplink",
        );
      } catch (e) {
        this.hooks.log.error({ uplink: u.name, err: (e as Error).message }, "could not forget connections");
      }
      out.push(f);
    }
    out.push(...(await this.forgetFamilies(prev, input, keeping)));
    return out;
  }

  /**
   * An uplink still live whose IPv4 or IPv6 alone left the split: that family's sticky choices of
   * it go, and with `flush_on_down` its connections of that family (the probes called it down).
   */
  private async forgetFamilies(
    prev: Applied | null,
    input: ReconcileInput,
    keeping: boolean,
  ): Promise<Forgotten[]> {
    const c = input.config;
    const downNow = input.probeDownFamilies ?? new Set<string>();
    const seen = this.familyDownSeen;
    this.familyDownSeen = new Set(downNow);
    const plan = this.applied?.desired.uplinks;
    if (!plan) return [];
    const before = new Map(prev?.desired.uplinks?.uplinks.map((u) => [u.name, u]));
    const out: Forgotten[] = [];
    for (const u of plan.uplinks) {
      if (!u.live) continue; // the whole uplink left: forget() did both families
      for (const fam of [4, 6] as const) {
        const liveNow = fam === 4 ? u.live4 : u.live6;
        const b = before.get(u.name);
        const liveBefore = b ? (fam === 4 ? b.live4 : b.live6) : false;
        if (liveNow) continue;
        const key = `${u.name}/${fam}`;
        const wentDown = seen !== null && downNow.has(key) && !seen.has(key);
        const flush = wentDown && c.balance.flush_on_down && !keeping;
        const sticky = stickyMaps(plan, fam);
        const purge = liveBefore && sticky.length > 0;
        if (!flush && !purge) continue;
        const f: Forgotten = { uplink: u.name, conntrack: 0, sticky: 0, family: fam };
        try {
          if (purge) f.sticky = await this.ops.purgeSticky(sticky, u.mark, plan.layout.mask);
          if (flush) f.conntrack = await this.ops.flushConntrack(u.mark, plan.layout.mask, fam);
          this.hooks.log.info(
            {
              uplink: u.name,
              family: `ipv${fam}`,
              conntrack: f.conntrack,
              sticky: f.sticky,
              reason: `IPv${fam} left the split`,
            },
            `forgot the IPv${fam} connections of an uplink whose IPv${fam} is down`,
          );
        } catch (e) {
          this.hooks.log.error({ uplink: u.name, err: (e as Error).message }, "could not forget connections");
        }
        out.push(f);
      }
    }
    return out;
  }

  /** After the slots moved: UDP flows pinned to a backend that just went down are balanced again. */
  private async forgetUdpFlows(prev: ServicesPlan | null, next: ServicesPlan | null): Promise<void> {
    const del = this.ops.deleteBackendFlows?.bind(this.ops);
    if (!del || !prev) return;
    for (const f of udpBackendsGoneDown(prev, next)) {
      try {
        const deleted = await del(f.flows, f.to);
        this.hooks.log.info(
          { service: f.service, backend: f.backend, conntrack: deleted, reason: "backend down" },
          "deleted the UDP flows of a dead backend",
        );
      } catch (e) {
        this.hooks.log.error(
          { service: f.service, backend: f.backend, err: (e as Error).message },
          "could not delete the UDP flows of a dead backend",
        );
      }
    }
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    const ms = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.reconcile("retry after a failed apply", { force: true });
    }, ms);
    this.retryTimer.unref();
  }
}

function merge(a: ReconcileOptions, b: ReconcileOptions): ReconcileOptions {
  return {
    force: a.force === true || b.force === true,
    verify: a.verify === true || b.verify === true,
    quiet: a.quiet === true && b.quiet === true,
    servicesOnly: a.servicesOnly === true && b.servicesOnly === true,
  };
}

/**
 * A live sticky element written into a new table: the map's timeout (what `update` refreshes it
 * to), expiring when it would have (`timeout 30m expires 9m59s`).
 */
export function carried(e: StickyElement, timeout: string | undefined): Element {
  const out: Element = { key: e.key, value: `0x${e.mark.toString(16)}` };
  if (timeout === undefined || e.expiresMs === null) return out;
  const limit = parseDuration(timeout);
  const left = Math.max(1000, Math.min(e.expiresMs, limit ?? e.expiresMs));
  return { ...out, timeout: `${timeout} expires ${left}ms` };
}

/** name → slot of a plan. */
export function slotsOf(p: UplinkPlan): Record<string, number> {
  return Object.fromEntries(p.uplinks.map((u) => [u.name, u.slot]));
}

/**
 * Fraction of new connections each uplink gets under an applied plan (0 for all when none): of
 * one family's split, or, without `fam`, of the IPv4 split (IPv6's when no uplink carries IPv4).
 */
export function sharesOf(d: Desired | undefined, fam?: 4 | 6): Map<string, number> {
  const out = new Map<string, number>();
  const plan = d?.uplinks;
  if (!plan) return out;
  for (const u of plan.uplinks) out.set(u.name, 0);
  const split = fam === 6 ? plan.split6 : fam === 4 ? plan.split4 : (plan.split4 ?? plan.split6);
  const slots = split?.slots ?? [];
  for (const s of slots) out.set(s, (out.get(s) ?? 0) + 1 / slots.length);
  return out;
}
