import type { Config } from "../config/schema.ts";
import { initialLoad, loadRatio, sampleLoad, spillStep, type LoadState } from "../health/link-load.ts";
import type { LinkBytes } from "../system/linkstats.ts";

/** What status and metrics show of an uplink's load. */
export interface LoadView {
  /** Smoothed bit/s received (down) and sent (up) on its interface; null before two samples. */
  down: number | null;
  up: number | null;
  /** Load / capacity in the busier direction; null without a capacity. */
  ratio: number | null;
  spilling: boolean;
}

export interface LinkLoadDeps {
  read: (iface: string) => Promise<LinkBytes | null>;
  /** An uplink crossed its threshold (spilling) or came back below `recover` (filling). */
  changed: (name: string, spilling: boolean, view: LoadView) => void;
  now?: () => number;
}

/**
 * Samples every uplink's interface counters while overflow or a capacity needs them (one sysfs
 * read per direction and uplink per interval), and keeps overflow's spill state. Its only effect
 * on the kernel is through the daemon: `changed` asks for a reconcile, whose effective weights
 * (src/plan/steer-weights.ts) read `spilling()`.
 */
export class LinkLoad {
  private states = new Map<string, { iface: string; load: LoadState; spilling: boolean }>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private config: Config | null = null;
  private intervalMs = 0;

  constructor(private readonly deps: LinkLoadDeps) {}

  /** Take a (new) config: sampling starts, stops or changes pace; removed uplinks are forgotten. */
  configure(c: Config): void {
    this.config = c;
    const ups = c.uplinks ?? {};
    for (const [n, s] of this.states) if (ups[n]?.interface !== s.iface) this.states.delete(n);
    for (const [n, u] of Object.entries(ups))
      if (!this.states.has(n))
        this.states.set(n, { iface: u.interface, load: initialLoad(), spilling: false });
    const wanted =
      c.balance.method === "overflow" || Object.values(ups).some((u) => u.capacity !== undefined);
    const interval = wanted ? c.balance.overflow.interval : 0;
    if (interval === this.intervalMs) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.intervalMs = interval;
    if (interval > 0) {
      this.timer = setInterval(() => void this.tick(), interval);
      this.timer.unref();
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.intervalMs = 0;
  }

  /** Uplinks over their threshold now. */
  spilling(): Set<string> {
    const out = new Set<string>();
    for (const [n, s] of this.states) if (s.spilling) out.add(n);
    return out;
  }

  view(name: string): LoadView | null {
    const s = this.states.get(name);
    if (!s || this.intervalMs === 0) return null;
    const cap = this.config?.uplinks?.[name]?.capacity;
    return { down: s.load.down, up: s.load.up, ratio: loadRatio(s.load, cap), spilling: s.spilling };
  }

  /** One sample of every uplink; public for tests. */
  async tick(): Promise<void> {
    const c = this.config;
    if (this.busy || !c) return;
    this.busy = true;
    try {
      const entries = [...this.states];
      const bytes = await Promise.all(entries.map(([, s]) => this.deps.read(s.iface).catch(() => null)));
      const at = (this.deps.now ?? Date.now)();
      const o = c.balance.overflow;
      entries.forEach(([name, s], i) => {
        if (this.states.get(name) !== s) return; // reconfigured meanwhile
        s.load = sampleLoad(s.load, bytes[i] ?? null, at, o.smoothing);
        const ratio = loadRatio(s.load, c.uplinks?.[name]?.capacity);
        const next = spillStep(s.spilling, ratio, o.threshold, o.recover);
        if (next === s.spilling) return;
        s.spilling = next;
        this.deps.changed(name, next, { down: s.load.down, up: s.load.up, ratio, spilling: next });
      });
    } finally {
      this.busy = false;
    }
  }
}

/** An uplink's status fields of capacity, load and overflow (src/api/status.ts). */
export function loadStatus(c: Config, name: string, view: LoadView | null) {
  const u = c.uplinks?.[name];
  const round = (x: number | null) => (x === null ? null : Math.round(x));
  return {
    capacity: u?.capacity ? { down: u.capacity.down ?? null, up: u.capacity.up ?? null } : null,
    load: view ? { down: round(view.down), up: round(view.up) } : null,
    load_ratio: view?.ratio === null || !view ? null : Math.round(view.ratio * 1000) / 1000,
    overflow:
      c.balance.method !== "overflow" || !u?.capacity
        ? null
        : view?.spilling
          ? ("spilling" as const)
          : ("filling" as const),
    metered: u?.metered ?? false,
  };
}
