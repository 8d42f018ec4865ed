import type { ServerResponse } from "node:http";
import type { DaemonEvent } from "./event.ts";

/** What the event stream reads: the daemon's event log. */
export interface EventFeed {
  on(event: "event", listener: (e: DaemonEvent) => void): unknown;
  off(event: "event", listener: (e: DaemonEvent) => void): unknown;
  since(id: number): DaemonEvent[];
}

export const HEARTBEAT_MS = 15_000;
export const MAX_STREAMS = 64;

export function sseFrame(e: DaemonEvent): string {
  return `id: ${e.id}\ndata: ${JSON.stringify(e)}\n\n`;
}

/**
 * Server-sent events: one `data:` frame per state change (a JSON DaemonEvent), a comment line as
 * heartbeat, and a replay of the recent history after `Last-Event-ID` when a client reconnects.
 */
export class EventStreams {
  private readonly open = new Set<ServerResponse>();

  constructor(
    private readonly feed: EventFeed,
    private readonly heartbeatMs = HEARTBEAT_MS,
  ) {}

  get count(): number {
    return this.open.size;
  }

  /** Takes over the response; returns false (nothing written) when too many streams are open. */
  serve(res: ServerResponse, lastEventId: string | undefined): boolean {
    if (this.open.size >= MAX_STREAMS) return false;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write("retry: 2000\n\n");
    const after = Number(lastEventId);
    if (lastEventId !== undefined && Number.isInteger(after))
      for (const e of this.feed.since(after)) res.write(sseFrame(e));
    const onEvent = (e: DaemonEvent) => res.write(sseFrame(e));
    const beat = setInterval(() => res.write(": heartbeat\n\n"), this.heartbeatMs);
    beat.unref();
    this.feed.on("event", onEvent);
    this.open.add(res);
    const done = () => {
      clearInterval(beat);
      this.feed.off("event", onEvent);
      this.open.delete(res);
    };
    res.on("close", done);
    res.on("error", done);
    return true;
  }

  /** End every stream (shutdown): clients see the end and reconnect to the next daemon. */
  closeAll(): void {
    for (const res of this.open) res.end();
    this.open.clear();
  }
}
