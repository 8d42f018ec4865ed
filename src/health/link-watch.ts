import { EventEmitter } from "node:events";
import { closeSync, openSync, readSync } from "node:fs";
import { defaultHops, pickGateway, type LearnedGateway } from "../net/gateways.ts";
import { isInterfaceName, networkOf, parseAddr, type Addr, type Prefix } from "../net/ip.ts";
import { exec } from "../system/exec.ts";
import { readDefaultRoutes } from "../system/iproute.ts";
import { wakeGroupFor } from "./wake-group.ts";
import { realClock, type Clock, type TimerId } from "./probe-clock.ts";
import {
  describeExit,
  onHelperOutput,
  spawnLines,
  stopProcess,
  type LineProcess,
  type SpawnLines,
} from "./probe-process.ts";

/** What the kernel says about one uplink's device. */
export interface LinkState {
  iface: string;
  exists: boolean;
  /** IFF_UP: the admin has it up. */
  adminUp: boolean;
  /** IFF_LOWER_UP: the driver reports carrier. */
  carrier: boolean;
  /** Global addresses usable as a source (not tentative, not failed DAD). */
  addresses: Addr[];
  /** Default gateways the system's routes name for this device (DHCP, RA), validated; absent: none. */
  gw4?: LearnedGateway;
  gw6?: LearnedGateway;
}

/** Why probes through this link cannot work right now, or null when they can. */
export function linkProblem(s: LinkState): string | null {
  if (!s.exists) return `interface ${s.iface} not present`;
  if (!s.adminUp) return `${s.iface} is administratively down`;
  if (!s.carrier) return `carrier lost on ${s.iface}`;
  if (s.addresses.length === 0) return `no address on ${s.iface}`;
  return null;
}

export function sameLink(a: LinkState, b: LinkState): boolean {
  return (
    a.exists === b.exists &&
    a.adminUp === b.adminUp &&
    a.carrier === b.carrier &&
    a.addresses.map((x) => x.text).join(",") === b.addresses.map((x) => x.text).join(",") &&
    JSON.stringify([a.gw4, a.gw6]) === JSON.stringify([b.gw4, b.gw6])
  );
}

interface RawAddrInfo {
  family?: string;
  local?: string;
  /** The peer of a point-to-point address. */
  address?: string;
  prefixlen?: number;
  scope?: string;
  tentative?: boolean;
  dadfailed?: boolean;
}
interface RawLink {
  ifname?: string;
  flags?: string[];
  addr_info?: RawAddrInfo[];
}

/** Default routes of both families (`ip -N -j route show table all exact 0/0`, `… ::/0`). */
export interface DefaultRoutesJson {
  v4: string;
  v6: string;
}

/**
 * Parse `ip -j addr show` into the states of the interfaces asked for (missing ones included),
 * with the default gateways the routes name for each (validated against its subnets).
 */
export function parseLinks(
  json: string,
  ifaces: Iterable<string>,
  routes: DefaultRoutesJson = { v4: "", v6: "" },
): Map<string, LinkState> {
  const hops = { 4: defaultHops(routes.v4), 6: defaultHops(routes.v6) };
  const raw = json.trim() ? (JSON.parse(json) as RawLink[]) : [];
  const byName = new Map(raw.filter((l) => l.ifname).map((l) => [l.ifname as string, l]));
  const out = new Map<string, LinkState>();
  for (const iface of ifaces) {
    const l = byName.get(iface);
    const flags = l?.flags ?? [];
    const addresses = (l?.addr_info ?? [])
      .filter((a) => a.scope === "global" && !a.tentative && !a.dadfailed && a.local)
      .map((a) => parseAddr(a.local ?? ""))
      .filter((a): a is Addr => a !== null)
      // Stable: within a family the kernel's order stays, primary address first.
      .sort((a, b) => a.family - b.family);
    // The peer of a point-to-point address is on-link too.
    const subnets: Prefix[] = (l?.addr_info ?? [])
      .filter((a) => a.scope === "global")
      .flatMap((a) =>
        [a.local, a.address].flatMap((x) => {
          const addr = x ? parseAddr(x) : null;
          return addr && typeof a.prefixlen === "number" ? [networkOf(addr, a.prefixlen)] : [];
        }),
      );
    const s: LinkState = {
      iface,
      exists: l !== undefined,
      adminUp: flags.includes("UP"),
      carrier: flags.includes("LOWER_UP"),
      addresses,
    };
    if (l) {
      const g4 = pickGateway(iface, 4, hops[4].get(iface) ?? [], subnets);
      const g6 = pickGateway(iface, 6, hops[6].get(iface) ?? [], subnets);
      if (g4.gw || g4.refused) s.gw4 = g4;
      if (g6.gw || g6.refused) s.gw6 = g6;
    }
    out.set(iface, s);
  }
  return out;
}

export type LinkEvents = {
  /** A watched interface changed (or was read for the first time). */
  link: [LinkState];
};

/** What monitors need from a link watcher (a fake in unit tests). */
export interface LinkSource extends EventEmitter<LinkEvents> {
  get(iface: string): LinkState | undefined;
}

export interface LinkWatchDeps {
  clock?: Clock;
  spawn?: SpawnLines;
  /** `ip -j addr show` output. */
  readLinks?: () => Promise<string>;
  /** The default routes of both families; without it (and with readLinks given) none. */
  readRoutes?: () => Promise<DefaultRoutesJson>;
  /** Re-read this often even without events (a missed event, a restarted `ip monitor`). */
  resyncMs?: number;
  /** The kernel's carrier-change counter of an interface (sysfs), null when unreadable. */
  readCarrierChanges?: (iface: string) => string | null;
  /** Look at the carrier counters about this often (ms); 0 turns that off (events only). */
  carrierCheckMs?: number;
  /** Moments the process is awake anyway (probers' wake-ups, helper output); returns the unsubscribe. */
  onAwake?: (fn: () => void) => () => void;
  log?: (msg: string) => void;
}

/**
 * While the process is awake at least this often anyway (the probers' shared wake-up: once per
 * round, 200 ms by default, for all uplinks), the carrier checks ride on it and the check timer
 * only runs as a safety net, every SLOW_CHECK_MS.
 */
const COVERED_GAP_MS = 250;
const SLOW_CHECK_MS = 1000;

const readDefaultRoutesWithIp = async (): Promise<DefaultRoutesJson> => {
  const [v4, v6] = await Promise.all([
    readDefaultRoutes(4, { timeoutMs: 5000 }),
    readDefaultRoutes(6, { timeoutMs: 5000 }),
  ]);
  return { v4, v6 };
};

const readLinksWithIp = async (): Promise<string> => {
  const r = await exec(["ip", "-j", "addr", "show"], { timeoutMs: 5000 });
  if (r.code !== 0) throw new Error(`ip -j addr show exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
};

/**
 * sysfs `carrier_changes` counters, one open file per interface, re-read with pread at offset 0:
 * one syscall per check. A read error (interface gone) closes the file; the next check reopens it.
 */
class CarrierCounters {
  private readonly fds = new Map<string, number>();
  private readonly buf = Buffer.alloc(32);

  read(iface: string): string | null {
    let fd = this.fds.get(iface);
    try {
      if (fd === undefined) {
        // `ip netns exec` mounts the namespace's own /sys, so this is the right interface there too.
        fd = openSync(`/sys/class/net/${iface}/carrier_changes`, "r");
        this.fds.set(iface, fd);
      }
      const n = readSync(fd, this.buf, 0, this.buf.length, 0);
      return this.buf.toString("latin1", 0, n);
    } catch {
      this.close(iface);
      return null;
    }
  }

  close(iface?: string): void {
    for (const [name, fd] of [...this.fds]) {
      if (iface !== undefined && name !== iface) continue;
      this.fds.delete(name);
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
  }
}

/**
 * One `ip monitor label link address route` for all uplinks (routes: a DHCP client's or RA's default
 * route names the gateway). iproute2 6.1 prints only text there (also with
 * `-j`), so every event line is a trigger to re-read `ip -j addr show`; a change of a watched
 * interface is emitted as `link`. Events arriving during a read cause one more read after it.
 *
 * Carrier: the kernel sends link notifications through linkwatch, which delays events it does not
 * deem urgent (a physical NIC's carrier, a veth whose ifindex equals its peer's, as in the lab) to
 * one batch per second for all namespaces together: measured 100–490 ms late on a busy lab host.
 * The carrier bit itself changes at once, so each uplink's sysfs `carrier_changes` counter is
 * checked (one pread each) and a change triggers the re-read: every 100 ms on a timer, or, while
 * the process wakes at least every 250 ms anyway (the probers' shared wake-up of wake-group.ts,
 * once per round; helper output read as it comes), at those moments (waking an idle Node process
 * costs far more than the reads), with the timer slowed to a once-a-second safety net. Either way
 * carrier loss is seen within ~250 ms even when its event is late (within ~1.25 s when all
 * probing stops at once).
 */
export class LinkWatcher extends EventEmitter<LinkEvents> implements LinkSource {
  private readonly clock: Clock;
  private readonly spawn: SpawnLines;
  private readonly readLinks: () => Promise<string>;
  private readonly readRoutes: () => Promise<DefaultRoutesJson>;
  private readonly resyncMs: number;
  private readonly ifaces: Set<string>;
  /** Interfaces whose gateways are learned from the routes. */
  private readonly learning = new Set<string>();
  private readonly states = new Map<string, LinkState>();
  private monitor: LineProcess | undefined;
  private running = false;
  private reading: Promise<void> | undefined;
  private again = false;
  private debounce: TimerId | undefined;
  private resync: TimerId | undefined;
  private restart: TimerId | undefined;
  private checkTimer: TimerId | undefined;
  private unsubscribeAwake: (() => void) | undefined;
  private readonly carrierSeen = new Map<string, string | null>();
  private readonly readCarrierChanges: (iface: string) => string | null;
  private readonly carrierCheckMs: number;
  private readonly counters = new CarrierCounters();
  private lastCheck = -Infinity;
  private lastAwake = -Infinity;
  /** The longest gap between two awake moments since the check timer last ran. */
  private awakeGap = Infinity;

  constructor(
    ifaces: Iterable<string>,
    private readonly deps: LinkWatchDeps = {},
  ) {
    super();
    this.clock = deps.clock ?? realClock;
    this.spawn = deps.spawn ?? spawnLines;
    this.readLinks = deps.readLinks ?? readLinksWithIp;
    this.readRoutes =
      deps.readRoutes ??
      (deps.readLinks ? () => Promise.resolve({ v4: "", v6: "" }) : readDefaultRoutesWithIp);
    this.resyncMs = deps.resyncMs ?? 30_000;
    this.readCarrierChanges = deps.readCarrierChanges ?? ((iface) => this.counters.read(iface));
    this.carrierCheckMs = deps.carrierCheckMs ?? 100;
    this.ifaces = new Set();
    for (const i of ifaces) this.watch(i);
  }

  /** Moments the process is awake anyway: helper output read as it comes, and the probers' wake-ups. */
  private readonly onAwake = (fn: () => void): (() => void) => {
    const offOutput = onHelperOutput(fn);
    const offWake = wakeGroupFor(this.clock).onWake(fn);
    return () => {
      offOutput();
      offWake();
    };
  };

  get(iface: string): LinkState | undefined {
    return this.states.get(iface);
  }

  /**
   * Add an interface (e.g. after a reload); its state arrives with the next read. `gateways`: its
   * default gateway is learned from the routes (`gateway: auto` or omitted), which makes every
   * read also read the default routes and default-route events trigger reads.
   */
  watch(iface: string, opts: { gateways?: boolean } = {}): void {
    if (!isInterfaceName(iface)) throw new Error(`invalid interface name ${JSON.stringify(iface)}`);
    const learn = opts.gateways === true && !this.learning.has(iface);
    if (learn) this.learning.add(iface);
    if (this.ifaces.has(iface) && !learn) return;
    this.ifaces.add(iface);
    if (this.running) this.trigger();
  }

  /** Starts `ip monitor`, then reads once; resolves when every watched interface has a state. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    // Monitor and counters first, read second: a change between them is seen by one or the other.
    this.startMonitor();
    if (this.carrierCheckMs > 0) {
      this.checkCarriers();
      this.unsubscribeAwake = (this.deps.onAwake ?? this.onAwake)(this.awake);
      this.scheduleCheck(this.carrierCheckMs);
    }
    await this.read();
    this.scheduleResync();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.unsubscribeAwake?.();
    this.unsubscribeAwake = undefined;
    for (const t of [this.debounce, this.resync, this.restart, this.checkTimer])
      if (t !== undefined) this.clock.clearTimeout(t);
    this.debounce = this.resync = this.restart = this.checkTimer = undefined;
    const m = this.monitor;
    this.monitor = undefined;
    if (m) await stopProcess(m);
    await this.reading;
    this.counters.close();
  }

  private startMonitor(): void {
    const proc = this.spawn(["ip", "monitor", "label", "link", "address", "route"], (line) => {
      // Continuation lines (indented) belong to the event already seen. Of the routes only the
      // default ones matter, and only while some gateway is learned.
      if (!line || /^\s/.test(line)) return;
      if (line.startsWith("[ROUTE]") && (this.learning.size === 0 || !/\bdefault\b/.test(line))) return;
      this.trigger();
    });
    this.monitor = proc;
    void proc.exited.then((e) => {
      if (!this.running || this.monitor !== proc) return;
      this.deps.log?.(`ip monitor ${describeExit(e, proc.stderr())}; restarting`);
      this.monitor = undefined;
      this.restart = this.clock.setTimeout(() => {
        this.restart = undefined;
        if (!this.running) return;
        this.startMonitor();
        this.trigger();
      }, 1000);
    });
  }

  /** Coalesce the lines of one burst (a link event often comes with address events) into one read. */
  private trigger(): void {
    if (this.debounce !== undefined || !this.running) return;
    this.debounce = this.clock.setTimeout(() => {
      this.debounce = undefined;
      void this.read();
    }, 5);
  }

  private read(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        try {
          const none = { v4: "", v6: "" };
          const [links, routes] = await Promise.all([
            this.readLinks(),
            this.learning.size > 0 ? this.readRoutes() : none,
          ]);
          this.apply(parseLinks(links, this.ifaces, routes));
        } catch (err) {
          this.deps.log?.(`reading links failed: ${(err as Error).message}`);
        }
      } while (this.again && this.running);
    })().finally(() => (this.reading = undefined));
    return this.reading;
  }

  private apply(now: Map<string, LinkState>): void {
    for (const [iface, s] of now) {
      const before = this.states.get(iface);
      if (before && sameLink(before, s)) continue;
      for (const r of [s.gw4?.refused, s.gw6?.refused])
        if (r && r !== before?.gw4?.refused && r !== before?.gw6?.refused) this.deps.log?.(r);
      this.states.set(iface, s);
      this.emit("link", s);
    }
  }

  /** Read every carrier counter (synchronously: a pread each); a change triggers a full re-read. */
  private checkCarriers(): void {
    this.lastCheck = this.clock.now();
    let changed = false;
    for (const iface of this.ifaces) {
      const v = this.readCarrierChanges(iface);
      if (this.carrierSeen.has(iface) && this.carrierSeen.get(iface) !== v) changed = true;
      this.carrierSeen.set(iface, v);
    }
    if (changed) this.trigger();
  }

  /** The process is awake anyway: check now if the last check is old enough (no wake-up of our own). */
  private readonly awake = (): void => {
    if (!this.running) return;
    const now = this.clock.now();
    this.awakeGap = Math.max(this.awakeGap, now - this.lastAwake);
    this.lastAwake = now;
    if (now - this.lastCheck >= this.carrierCheckMs) this.checkCarriers();
  };

  /**
   * The check timer: every carrierCheckMs, or every SLOW_CHECK_MS after a period in which the
   * process was awake anyway at least every COVERED_GAP_MS.
   */
  private scheduleCheck(ms: number): void {
    this.checkTimer = this.clock.setTimeout(() => {
      this.checkTimer = undefined;
      if (!this.running) return;
      const now = this.clock.now();
      const covered = this.awakeGap <= COVERED_GAP_MS && now - this.lastAwake <= COVERED_GAP_MS;
      this.awakeGap = 0;
      if (now - this.lastCheck >= this.carrierCheckMs) this.checkCarriers();
      this.scheduleCheck(covered ? SLOW_CHECK_MS : this.carrierCheckMs);
    }, ms);
  }

  private scheduleResync(): void {
    this.resync = this.clock.setTimeout(() => {
      this.resync = undefined;
      if (!this.running) return;
      void this.read();
      this.scheduleResync();
    }, this.resyncMs);
  }
}
