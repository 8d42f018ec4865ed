import type { ServerResponse } from "node:http";
import type { DaemonEvent } from "./event.ts";
import { parseAddr } from "../net/ip.ts";
import { isLoopback } from "./auth.ts";

/** What the event stream reads: the daemon's event log. */
export interface EventFeed {
  on(event: "event", listener: (e: DaemonEvent) => void): unknown;
  off(event: "event", listener: (e: DaemonEvent) => void): unknown;
  since(id: number): DaemonEvent[];
}

export const HEARTBEAT_MS = 15_000;
export const MAX_STREAMS = 64;
/** Per client (see clientKey): a few dashboards in tabs, not the whole table. */
export const MAX_STREAMS_PER_CLIENT = 8;

/**
 * Whose stream slots a request uses: its IPv4 address, its IPv6 /64 (one host can hold a whole
 * /64), or "loopback" for the machine itself (127.0.0.0/8 is one client, not 16 million).
 */
export function clientKey(addr: string | undefined): string {
  if (!addr) return "?";
  if (isLoopback(addr)) return "loopback";
  const a = parseAddr(addr.startsWith("::ffff:") && addr.includes(".") ? addr.slice(7) : addr);
  if (!a) return addr;
  if (a.family === 4) return a.text;
  const groups = expandV6(a.text);
  return `${groups.slice(0, 4).join(":")}::/64`;
}

function expandV6(text: string): string[] {
  const [head = "", tail] = text.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  return [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
}

export type ServeResult = { ok: true } | { ok: false; error: string };

export function sseFrame(e: DaemonEvent): string {
  return `id: ${e.id}\ndata: ${JSON.stringify(e)}\n\n`;
}

/**
 * Server-sent events: one `data:` frame per state change (a JSON DaemonEvent), a comment line as
 * heartbeat, and a replay of the recent history after `Last-Event-ID` when a client reconnects.
 */
export class EventStreams {
  private readonly open = new Set<ServerResponse>();
  private readonly perClient = new Map<string, number>();

  constructor(
    private readonly feed: EventFeed,
    private readonly heartbeatMs = HEARTBEAT_MS,
    private readonly limits = { total: MAX_STREAMS, perClient: MAX_STREAMS_PER_CLIENT },
  ) {}

  get count(): number {
    return this.open.size;
  }

  /** Takes over the response; refuses (nothing written) when too many streams are open. */
  serve(res: ServerResponse, lastEventId: string | undefined, client = "?"): ServeResult {
    if (this.open.size >= this.limits.total) return { ok: false, error: "too many event streams open" };
    const mine = this.perClient.get(client) ?? 0;
    if (mine >= this.limits.perClient)
      return { ok: false, error: `too many event streams open from ${client} (${mine})` };
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
    this.perClient.set(client, mine + 1);
    let ended = false;
    const done = () => {
      if (ended) return;
      ended = true;
      clearInterval(beat);
      this.feed.off("event", onEvent);
      this.open.delete(res);
      const n = (this.perClient.get(client) ?? 1) - 1;
      if (n > 0) this.perClient.set(client, n);
      else this.perClient.delete(client);
    };
    res.on("close", done);
    res.on("error", done);
    return { ok: true };
  }

  /** End every stream (shutdown): clients see the end and reconnect to the next daemon. */
  closeAll(): void {
    for (const res of this.open) res.end();
    this.open.clear();
    this.perClient.clear();
  }
}
