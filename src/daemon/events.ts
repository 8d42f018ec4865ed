import { EventEmitter } from "node:events";

// The event's shape is the API's contract (src/api/event.ts): the daemon imports it downward.
import type { DaemonEvent, NewEvent } from "../api/event.ts";
export type { DaemonEvent, NewEvent };

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
