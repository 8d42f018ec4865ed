import { parseAddr } from "../net/ip.ts";

/**
 * conntrack's view of DNATed flows, as lines: `conntrack -E` streams one line per event, `conntrack
 * -L` lists the table in the same format without the `[TYPE]` prefix. Both with `-g` (destination
 * NAT only: the services' flows, never the uplinks' masqueraded ones) and `-o id`.
 *
 *     [NEW] tcp 6 120 SYN_SENT src=C dst=VIP sport=P dport=80 [UNREPLIED] src=B dst=C sport=80 dport=P id=N
 *  [UPDATE] tcp 6 60 SYN_RECV src=C dst=VIP sport=P dport=80 src=B dst=C sport=80 dport=P id=N
 * [DESTROY] tcp 6 120 CLOSE src=C dst=VIP … [UNREPLIED] src=B … id=N          (a refused SYN)
 */

/** `conntrack -E`: every NEW, UPDATE (TCP state changes) and DESTROY of a DNATed flow. */
export function flowEventsArgv(bufferBytes = 16 * 1024 * 1024): string[] {
  // A large socket buffer: a burst of new connections must not overflow it (ENOBUFS loses events).
  return ["conntrack", "-E", "-e", "NEW,UPDATE,DESTROY", "-b", String(bufferBytes), "-g", "-o", "id"];
}

/** `conntrack -L`: every DNATed flow now, both families (the resync). */
export const FLOW_LIST_ARGV: readonly string[] = ["conntrack", "-L", "-g", "-o", "id"];

/** What conntrack prints on stderr when its socket buffer overflowed: events were lost. */
export const LOST_EVENTS = /ENOBUFS/;

/** Longer lines are not conntrack's (an IPv6 entry with every option is under 400 bytes). */
export const MAX_FLOW_LINE = 1024;

export type FlowEventType = "new" | "update" | "destroy" | "list";

export interface FlowEvent {
  type: FlowEventType;
  id: number;
  protocol: "tcp" | "udp";
  /** TCP state (`SYN_SENT`, `ESTABLISHED`, …); null for UDP. */
  state: string | null;
  /** The service as the client addressed it: `tcp 203.0.113.10 80` (see flowServiceKey). */
  service: string;
  /** The backend that answers (the reply direction's source), `ADDRESS:PORT` as formatHostPort writes it. */
  backend: string;
}

const TCP_STATES = new Set([
  "NONE",
  "SYN_SENT",
  "SYN_RECV",
  "ESTABLISHED",
  "FIN_WAIT",
  "CLOSE_WAIT",
  "LAST_ACK",
  "TIME_WAIT",
  "CLOSE",
  "SYN_SENT2",
]);

/** The key of a service's flows: protocol, VIP (canonical text) and port. */
export function flowServiceKey(protocol: "tcp" | "udp", vip: string, port: number): string {
  return `${protocol} ${vip} ${port}`;
}

/**
 * One line: the event, protocol, TCP state, the original direction's dst/dport (the VIP) and the
 * reply direction's src/sport (the backend), and the id. One regular expression, no splitting:
 * the daemon parses every event of every service connection.
 */
const LINE =
  /^\s*(?:\[(NEW|UPDATE|DESTROY)\]\s+)?(tcp|udp)\s+\d+\s+(?:\d+\s+)?(?:([A-Z][A-Z_0-9]*)\s+)?src=\S+\s+dst=(\S+)\s+sport=\d+\s+dport=(\d+)\s+(?:\[UNREPLIED\]\s+)?src=(\S+)\s+dst=\S+\s+sport=(\d+)\s+dport=\d+\s(?:.*\s)?id=(\d{1,10})(?:\s|$)/;

/** Address text → canonical, for the few VIPs and backends every line repeats. */
const canonical = new Map<string, string | null>();
const CANONICAL_MAX = 4096;

function canon(text: string): { text: string; family: 4 | 6 } | null {
  let c = canonical.get(text);
  if (c === undefined) {
    const a = parseAddr(text);
    c = a ? `${a.family}${a.text}` : null;
    if (canonical.size >= CANONICAL_MAX) canonical.clear();
    canonical.set(text, c);
  }
  return c === null ? null : { family: c[0] === "4" ? 4 : 6, text: c.slice(1) };
}

/** One line of `conntrack -E` or `-L` output; null for anything else (summaries, other protocols, junk). Pure. */
export function parseFlowLine(line: string): FlowEvent | null {
  if (line.length > MAX_FLOW_LINE) return null;
  const m = LINE.exec(line);
  if (!m) return null;
  const [, ev, proto, st, dst, dport, rsrc, rsport, id] = m;
  const protocol = proto as "tcp" | "udp";
  const state = protocol === "tcp" ? (st ?? null) : null;
  if (protocol === "tcp" && (state === null || !TCP_STATES.has(state))) return null;
  const vip = canon(dst ?? "");
  const backend = canon(rsrc ?? "");
  const vport = port(dport);
  const bport = port(rsport);
  if (!vip || !backend || vport === null || bport === null || vip.family !== backend.family) return null;
  return {
    type: ev === "NEW" ? "new" : ev === "UPDATE" ? "update" : ev === "DESTROY" ? "destroy" : "list",
    id: Number(id),
    protocol,
    state,
    service: flowServiceKey(protocol, vip.text, vport),
    backend: backend.family === 6 ? `[${backend.text}]:${bport}` : `${backend.text}:${bport}`,
  };
}

function port(s: string | undefined): number | null {
  if (s === undefined || !/^\d{1,5}$/.test(s)) return null;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : null;
}
