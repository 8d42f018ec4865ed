/** One JSON line of src/health/probe-cli.ts. */
export interface ProbeEvent {
  event: "ready" | "link" | "round" | "change" | "stopped";
  /** Wall clock (Date.now()) when the CLI printed it. */
  t: number;
  name?: string;
  iface?: string;
  carrier?: boolean;
  state?: "up" | "down";
  reason?: string;
  loss?: number;
  rttMs?: number | null;
  quality?: number;
  seq?: number;
  good?: boolean;
  counted?: boolean;
  why?: string;
  results?: { target: string; rttMs: number | null }[];
}

/** Reads probe-cli's stdout (for lab tests and benches) and lets callers wait for events. */
export class ProbeEventLog {
  readonly all: ProbeEvent[] = [];
  private readonly waiters = new Set<() => void>();
  private buf = "";

  feed(chunk: string): void {
    this.buf += chunk;
    const lines = this.buf.split("\n");
    this.buf = lines.pop() ?? "";
    for (const l of lines) if (l.startsWith("{")) this.all.push(JSON.parse(l) as ProbeEvent);
    for (const w of [...this.waiters]) w();
  }

  /** Position to look from later: `since(mark)`, `waitFor(…, mark)`. */
  get mark(): number {
    return this.all.length;
  }

  since(mark: number, pred: (e: ProbeEvent) => boolean = () => true): ProbeEvent[] {
    return this.all.slice(mark).filter(pred);
  }

  /** The first event at or after `from` matching `pred`, waiting up to `timeoutMs` for it. */
  waitFor(
    pred: (e: ProbeEvent) => boolean,
    timeoutMs: number,
    from = 0,
    what = "event",
  ): Promise<ProbeEvent> {
    return new Promise((resolve, reject) => {
      let next = from;
      const check = () => {
        for (; next < this.all.length; next++) {
          const e = this.all[next] as ProbeEvent;
          if (!pred(e)) continue;
          done();
          resolve(e);
          return true;
        }
        return false;
      };
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(onData);
      };
      const onData = () => void check();
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      if (!check()) this.waiters.add(onData);
    });
  }
}

export const isChange = (name: string, state: "up" | "down") => (e: ProbeEvent) =>
  e.event === "change" && e.name === name && e.state === state;
