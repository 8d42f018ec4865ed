import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { LinkBytes } from "../system/linkstats.ts";
import { formatHostPort, parseHostPort } from "../net/ip.ts";
import { connCounter } from "../nft/names.ts";

/** What the metrics read from the daemon at scrape time. */
export interface MetricsSource {
  uplinks(): {
    name: string;
    iface: string;
    up: boolean;
    rttMs: number | null;
    loss: number;
    share: number;
    /** Per family (the status's `families`): its own up, probe figures and share of its split. */
    families?: Record<"ipv4" | "ipv6", { up: boolean; rttMs: number | null; loss: number; share: number }>;
    jitterMs?: number | null;
    /** Smoothed bit/s from the interface's counters; absent while nothing samples them. */
    load?: { down: number | null; up: number | null } | null;
    capacity?: { down?: number; up?: number } | null;
    /** Overflow: 1 over its threshold, 0 below; absent without overflow. */
    spilling?: boolean | null;
  }[];
  /** `counter`: the key of the backend's kernel counters in `readCounters` (`KEY`, `KEY_to`, `KEY_from`). */
  backends(): { service: string; backend: string; up: boolean; counter: string | null }[];
  cluster(): { node: string; bucketsOwned: number } | null;
  /** Kernel counters of table inet nflb: named counters, and the services' per-element counters. */
  readCounters(): Promise<Map<string, { packets: number; bytes: number }>>;
  readLinkBytes(iface: string): Promise<LinkBytes | null>;
  /** service → backend (canonical ADDRESS:PORT) → connections open now (conntrack), read per scrape. */
  activeConnections?(): Promise<ReadonlyMap<string, ReadonlyMap<string, number>> | null>;
}

export const APPLY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * Kernel counters restart at 0 when the table is replaced (a reload) or an interface comes back;
 * exported counters must not go backwards, so a drop is carried into a base.
 */
export class Monotonic {
  private readonly seen = new Map<string, { last: number; base: number }>();
  value(key: string, current: number): number {
    const s = this.seen.get(key) ?? { last: 0, base: 0 };
    if (current < s.last) s.base += s.last;
    s.last = current;
    this.seen.set(key, s);
    return s.base + current;
  }
}

const NONE = { packets: 0, bytes: 0 };

interface Snapshot {
  counters: Map<string, { packets: number; bytes: number }>;
  links: Map<string, LinkBytes>;
  active: ReadonlyMap<string, ReadonlyMap<string, number>> | null;
}

const canonical = (address: string) => {
  const hp = parseHostPort(address);
  return "error" in hp ? address : formatHostPort(hp.addr, hp.port);
};

/** Every metric of the contract, in one registry; kernel counters are read once per scrape. */
export class Metrics {
  readonly registry = new Registry();
  readonly applySeconds: Histogram<"kind">;
  readonly transitions: Counter<"uplink" | "to">;
  readonly familyTransitions: Counter<"uplink" | "family" | "to">;
  private snap: Snapshot = { counters: new Map(), links: new Map(), active: null };
  private readonly mono = new Monotonic();

  constructor(private readonly src: MetricsSource) {
    const registers = [this.registry];
    const snap = () => this.snap;
    const mono = this.mono;

    new Gauge({
      name: "nflb_uplink_up",
      help: "1 when the uplink is up, 0 when down or disabled",
      labelNames: ["uplink"],
      registers,
      collect() {
        this.reset();
        for (const u of src.uplinks()) this.set({ uplink: u.name }, u.up ? 1 : 0);
      },
    });
    new Gauge({
      name: "nflb_uplink_rtt_seconds",
      help: "smoothed probe round-trip time",
      labelNames: ["uplink"],
      registers,
      collect() {
        this.reset();
        for (const u of src.uplinks()) if (u.rttMs !== null) this.set({ uplink: u.name }, u.rttMs / 1000);
      },
    });
    new Gauge({
      name: "nflb_uplink_jitter_seconds",
      help: "smoothed variation between consecutive probe rounds' RTTs (RFC 3550 style)",
      labelNames: ["uplink"],
      registers,
      collect() {
        this.reset();
        for (const u of src.uplinks())
          if (u.jitterMs !== null && u.jitterMs !== undefined)
            this.set({ uplink: u.name }, u.jitterMs / 1000);
      },
    });
    const perDirection = (
      g: Gauge<"uplink" | "direction">,
      pick: (
        u: ReturnType<MetricsSource["uplinks"]>[number],
      ) => { down?: number | null; up?: number | null } | null | undefined,
    ) => {
      g.reset();
      for (const u of src.uplinks()) {
        const v = pick(u);
        for (const direction of ["down", "up"] as const) {
          const x = v?.[direction];
          if (x !== null && x !== undefined) g.set({ uplink: u.name, direction }, x);
        }
      }
    };
    new Gauge({
      name: "nflb_uplink_load_bits_per_second",
      help: "load measured from the interface's counters (smoothed), by direction (down = received, up = sent)",
      labelNames: ["uplink", "direction"],
      registers,
      collect() {
        perDirection(this, (u) => u.load);
      },
    });
    new Gauge({
      name: "nflb_uplink_capacity_bits_per_second",
      help: "the uplink's configured capacity, by direction",
      labelNames: ["uplink", "direction"],
      registers,
      collect() {
        perDirection(this, (u) => u.capacity);
      },
    });
    new Gauge({
      name: "nflb_uplink_spilling",
      help: "balance.method overflow: 1 while the uplink is over its threshold (new connections go to the next)",
      labelNames: ["uplink"],
      registers,
      collect() {
        this.reset();
        for (const u of src.uplinks())
          if (u.spilling !== null && u.spilling !== undefined)
            this.set({ uplink: u.name }, u.spilling ? 1 : 0);
      },
    });
    new Gauge({
      name: "nflb_uplink_loss_ratio",
      help: "probe loss over the last rounds, 0..1",
      labelNames: ["uplink"],
      registers,
      collect() {
        this.reset();
        for (const u of src.uplinks()) this.set({ uplink: u.name }, u.loss);
      },
    });
    new Gauge({
      name: "nflb_uplink_share",
      help: "fraction of new connections assigned to the uplink now",
      labelNames: ["uplink"],
      registers,
      collect() {
        this.reset();
        for (const u of src.uplinks()) this.set({ uplink: u.name }, u.share);
      },
    });
    new Counter({
      name: "nflb_uplink_connections_total",
      help: "new connections that left by the uplink (kernel counter)",
      labelNames: ["uplink"],
      registers,
      collect() {
        this.reset();
        for (const u of src.uplinks()) {
          const c = snap().counters.get(connCounter(u.name));
          if (c) this.inc({ uplink: u.name }, mono.value(`conns/${u.name}`, c.packets));
        }
      },
    });
    new Counter({
      name: "nflb_uplink_bytes_total",
      help: "bytes through the uplink's interface (kernel counter); in = received, out = sent",
      labelNames: ["uplink", "direction"],
      registers,
      collect() {
        this.reset();
        for (const u of src.uplinks()) {
          const b = snap().links.get(u.iface);
          if (!b) continue;
          this.inc({ uplink: u.name, direction: "in" }, mono.value(`rx/${u.name}`, b.rx));
          this.inc({ uplink: u.name, direction: "out" }, mono.value(`tx/${u.name}`, b.tx));
        }
      },
    });
    this.transitions = new Counter({
      name: "nflb_uplink_transitions_total",
      help: "uplink state changes, by the state changed to",
      labelNames: ["uplink", "to"],
      registers,
    });
    // Per family (IPv4 and IPv6 fail separately): new names, so the contract's series keep their labels.
    const perFamily = (
      name: string,
      help: string,
      value: (f: { up: boolean; rttMs: number | null; loss: number; share: number }) => number | null,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ["uplink", "family"],
        registers,
        collect() {
          this.reset();
          for (const u of src.uplinks())
            for (const [family, f] of Object.entries(u.families ?? {})) {
              const v = value(f);
              if (v !== null) this.set({ uplink: u.name, family }, v);
            }
        },
      });
    perFamily(
      "nflb_uplink_family_up",
      "1 when the uplink carries this family's new connections, else 0",
      (f) => (f.up ? 1 : 0),
    );
    perFamily("nflb_uplink_family_rtt_seconds", "smoothed probe RTT of this family's targets", (f) =>
      f.rttMs === null ? null : f.rttMs / 1000,
    );
    perFamily("nflb_uplink_family_loss_ratio", "probe loss of this family's targets, 0..1", (f) => f.loss);
    perFamily(
      "nflb_uplink_family_share",
      "fraction of this family's new connections assigned now",
      (f) => f.share,
    );
    this.familyTransitions = new Counter({
      name: "nflb_uplink_family_transitions_total",
      help: "changes of one family's probed state on an uplink, by the state changed to",
      labelNames: ["uplink", "family", "to"],
      registers,
    });
    new Gauge({
      name: "nflb_backend_up",
      help: "1 when the backend is up (draining included), 0 when down",
      labelNames: ["service", "backend"],
      registers,
      collect() {
        this.reset();
        for (const b of src.backends()) this.set({ service: b.service, backend: b.backend }, b.up ? 1 : 0);
      },
    });
    new Counter({
      name: "nflb_backend_connections_total",
      help: "new connections sent to the backend (kernel counter)",
      labelNames: ["service", "backend"],
      registers,
      collect() {
        this.reset();
        for (const b of src.backends()) {
          // A backend's counter element exists from its first packet on (a dynamic set): none is 0.
          const c = b.counter ? (snap().counters.get(b.counter) ?? NONE) : undefined;
          const key = `backend/${b.service}/${b.backend}`;
          if (c) this.inc({ service: b.service, backend: b.backend }, mono.value(key, c.packets));
        }
      },
    });
    new Gauge({
      name: "nflb_backend_active_connections",
      help: "connections the backend holds now (conntrack)",
      labelNames: ["service", "backend"],
      registers,
      collect() {
        this.reset();
        const active = snap().active;
        for (const b of src.backends()) {
          const per = active?.get(b.service);
          if (per) this.set({ service: b.service, backend: b.backend }, per.get(canonical(b.backend)) ?? 0);
        }
      },
    });
    new Counter({
      name: "nflb_backend_bytes_total",
      help: "bytes of the backend's DNATed connections forwarded, by direction (to_backend, from_backend)",
      labelNames: ["service", "backend", "direction"],
      registers,
      collect() {
        this.reset();
        for (const b of src.backends()) {
          if (!b.counter) continue;
          for (const [direction, suffix] of [
            ["to_backend", "_to"],
            ["from_backend", "_from"],
          ] as const) {
            const c = snap().counters.get(b.counter + suffix) ?? NONE;
            const key = `bytes/${direction}/${b.service}/${b.backend}`;
            if (c) this.inc({ service: b.service, backend: b.backend, direction }, mono.value(key, c.bytes));
          }
        }
      },
    });
    new Gauge({
      name: "nflb_cluster_buckets_owned",
      help: "hash buckets this node answers for",
      labelNames: ["node"],
      registers,
      collect() {
        this.reset();
        const c = src.cluster();
        if (c) this.set({ node: c.node }, c.bucketsOwned);
      },
    });
    this.applySeconds = new Histogram({
      name: "nflb_apply_seconds",
      help: "time of one data-plane transaction",
      labelNames: ["kind"],
      buckets: APPLY_BUCKETS,
      registers,
    });
    this.applySeconds.zero({ kind: "full" });
    this.applySeconds.zero({ kind: "update" });
    // The lag histogram samples once per precision period: every 1 s is plenty for a daemon
    // scraped every few seconds, and each sample is a wake-up of its own (prom-client's default: 10 ms).
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 1000 });
  }

  /** Start the transition counters at 0 so a rate() works before the first change. */
  declareUplinks(names: string[]): void {
    for (const uplink of names) {
      for (const to of ["up", "down", "disabled"]) this.transitions.inc({ uplink, to }, 0);
      for (const family of ["ipv4", "ipv6"])
        for (const to of ["up", "down"]) this.familyTransitions.inc({ uplink, family, to }, 0);
    }
  }

  contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text; reads the kernel counters once for all metrics. */
  async scrape(): Promise<string> {
    const counters = await this.src.readCounters().catch(() => new Map());
    const links = new Map<string, LinkBytes>();
    await Promise.all(
      this.src.uplinks().map(async (u) => {
        const b = await this.src.readLinkBytes(u.iface);
        if (b) links.set(u.iface, b);
      }),
    );
    const active = (await this.src.activeConnections?.().catch(() => null)) ?? null;
    this.snap = { counters, links, active };
    return this.registry.metrics();
  }
}
