import { formatHostPort, parseAddr } from "../net/ip.ts";

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

const TYPES: Record<string, FlowEventType> = {
  "[NEW]": "new",
  "[UPDATE]": "update",
  "[DESTROY]": "destroy",
};

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

/** One line of `conntrack -E` or `-L` output; null for anything else (summaries, other protocols, junk). Pure. */
export function parseFlowLine(line: string): FlowEvent | null {
  if (line.length > MAX_FLOW_LINE) return null;
  const words = line.trim().split(/\s+/);
  let i = 0;
  let type: FlowEventType = "list";
  const first = words[0] ?? "";
  if (first.startsWith("[")) {
    const t = TYPES[first];
    if (!t) return null;
    type = t;
    i = 1;
  }
  const protocol = words[i];
  if (protocol !== "tcp" && protocol !== "udp") return null;
  let state: string | null = null;
  const src: string[] = [];
  const dst: string[] = [];
  const sport: string[] = [];
  const dport: string[] = [];
  let id: number | null = null;
  for (let k = i + 1; k < words.length; k++) {
    const w = words[k] as string;
    const eq = w.indexOf("=");
    if (eq < 0) {
      if (protocol === "tcp" && state === null && TCP_STATES.has(w)) state = w;
      continue;
    }
    const v = w.slice(eq + 1);
    switch (w.slice(0, eq)) {
      case "src":
        src.push(v);
        break;
      case "dst":
        dst.push(v);
        break;
      case "sport":
        sport.push(v);
        break;
      case "dport":
        dport.push(v);
        break;
      case "id":
        id = /^\d{1,10}$/.test(v) ? Number(v) : null;
        break;
    }
  }
  if (id === null || (protocol === "tcp" && state === null)) return null;
  const vip = parseAddr(dst[0] ?? "");
  const backend = parseAddr(src[1] ?? "");
  const vport = port(dport[0]);
  const bport = port(sport[1]);
  if (!vip || !backend || vport === null || bport === null || vip.family !== backend.family) return null;
  return {
    type,
    id,
    protocol,
    state,
    service: flowServiceKey(protocol, vip.text, vport),
    backend: formatHostPort(backend, bport),
  };
}

function port(s: string | undefined): number | null {
  if (s === undefined || !/^\d{1,5}$/.test(s)) return null;
  const n = Number(s);
  return n >= 1 && n <= 65535 ? n : null;
}
