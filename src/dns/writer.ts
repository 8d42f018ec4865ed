import type { SetWrite } from "./table.ts";

/** How long refreshes wait to be written together. */
export const BATCH_MS = 50;

export interface WriterStats {
  onWrite?: (seconds: number, elements: number, ok: boolean) => void;
}

/**
 * Batches DNS-set writes into one nft transaction at a time. A write that adds an address the set
 * lacks is urgent: the forwarder holds the client's answer until it is in the kernel, so the
 * client's first connection already matches; it is written at once (or right after the
 * transaction in flight). Refreshes of addresses the set holds wait up to BATCH_MS for company and
 * are not waited for. A failed write resolves too (the answer must reach the client anyway): the
 * caller's `apply` logs it, and the next full replace carries the table's elements.
 */
export class SetWriter {
  private queued = new Map<string, SetWrite>();
  private waiters: (() => void)[] = [];
  private urgent = false;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private closed = false;

  constructor(
    private readonly apply: (writes: SetWrite[]) => Promise<void>,
    private readonly stats: WriterStats = {},
    private readonly batchMs = BATCH_MS,
  ) {}

  /** Resolves once these writes are in the kernel (or failed); refreshes resolve at once. */
  write(writes: readonly SetWrite[], urgent: boolean): Promise<void> {
    if (writes.length === 0 || this.closed) return Promise.resolve();
    for (const w of writes) this.queued.set(`${w.rule} ${w.addr}`, w);
    const done = urgent ? new Promise<void>((resolve) => this.waiters.push(resolve)) : Promise.resolve();
    if (urgent) this.urgent = true;
    this.schedule();
    return done;
  }

  private schedule(): void {
    if (this.running || this.queued.size === 0) return;
    if (this.urgent) {
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.batchMs);
      this.timer.unref();
    }
  }

  private async flush(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const writes = [...this.queued.values()];
    const waiters = this.waiters;
    this.queued = new Map();
    this.waiters = [];
    this.urgent = false;
    const t0 = performance.now();
    let ok = true;
    try {
      await this.apply(writes);
    } catch {
      ok = false;
    }
    this.stats.onWrite?.((performance.now() - t0) / 1000, writes.length, ok);
    for (const w of waiters) w();
    this.running = false;
    this.schedule();
  }

  /** Writes still queued are dropped; their waiters resolve. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const w of this.waiters) w();
    this.waiters = [];
    this.queued.clear();
  }
}
