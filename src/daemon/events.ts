import { EventEmitter } from "node:events";

/** One state change, as logged, sent to the API's event stream and to the on_change hook. */
export interface DaemonEvent {
  id: number;
  /** ISO time. */
  at: string;
  kind: "uplink" | "backend" | "cluster" | "daemon";
  /** Uplink name; `SERVICE/ADDRESS:PORT` for a backend; node name for the cluster. */
  name: string;
  state: string;
  reason: string;
  service?: string;
  backend?: string;
}

export type NewEvent = Omit<DaemonEvent, "id" | "at">;

const KEEP = 200;

/** The daemon's event feed: a bounded history plus live subscribers (SSE clients). */
export class EventLog extends EventEmitter<{ event: [DaemonEvent] }> {
  private readonly ring: DaemonEvent[] = [];
  private seq = 0;

  constructor(private readonly now: () => Date = () => new Date()) {
    super();
    // Every SSE client is a listener; the API bounds how many there are.
    this.setMaxListeners(0);
  }

  publish(e: NewEvent): DaemonEvent {
    const full: DaemonEvent = { id: ++this.seq, at: this.now().toISOString(), ...e };
    this.ring.push(full);
    if (this.ring.length > KEEP) this.ring.shift();
    this.emit("event", full);
    return full;
  }

  /** Events after `id` still in the history (for an SSE client reconnecting with Last-Event-ID). */
  since(id: number): DaemonEvent[] {
    return this.ring.filter((e) => e.id > id);
  }

  recent(n = KEEP): DaemonEvent[] {
    return this.ring.slice(-n);
  }
}
