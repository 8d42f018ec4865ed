import { parseAddr, type Addr } from "../net/ip.ts";

/** The first packet of a connection, as `nflb explain` is asked about it. */
export interface Query {
  src: Addr;
  dst: Addr;
  /** Missing: the question is about any protocol; rules that need one are reported, not matched. */
  proto?: "tcp" | "udp" | "icmp";
  /** Destination port (tcp/udp). */
  port?: number;
  /** Source port, for `cluster.hash: source-port`. */
  sport?: number;
  /** The interface the packet arrives on; missing: assumed to be a balanced (LAN) interface. */
  iif?: string;
  /** The router's own traffic (it leaves by the output path, not prerouting). */
  local?: boolean;
}

export type QueryInput = {
  src: string;
  dst: string;
  proto?: string | undefined;
  port?: string | undefined;
  sport?: string | undefined;
  iif?: string | undefined;
  local?: boolean | undefined;
};

/** Validate the command-line words of a query; an error names what is wrong. */
export function parseQuery(q: QueryInput): Query | { error: string } {
  const src = parseAddr(q.src);
  if (!src) return { error: `SRC ${q.src} is not an IPv4 or IPv6 address` };
  const dst = parseAddr(q.dst);
  if (!dst) return { error: `DST ${q.dst} is not an IPv4 or IPv6 address` };
  if (src.family !== dst.family) return { error: "SRC and DST must be of the same address family" };
  const out: Query = { src, dst };
  if (q.proto !== undefined) {
    const p = q.proto.toLowerCase();
    if (p === "icmpv6" || p === "ipv6-icmp" || p === "icmp") out.proto = "icmp";
    else if (p === "tcp" || p === "udp") out.proto = p;
    else return { error: `PROTO must be tcp, udp or icmp, not ${q.proto}` };
  }
  const port = (s: string | undefined, what: string): number | { error: string } | undefined => {
    if (s === undefined) return undefined;
    const n = /^\d{1,5}$/.test(s) ? Number(s) : NaN;
    return n >= 1 && n <= 65535 ? n : { error: `${what} must be a port number 1..65535, not ${s}` };
  };
  const dport = port(q.port, "PORT");
  if (typeof dport === "object") return dport;
  if (dport !== undefined) {
    if (out.proto !== "tcp" && out.proto !== "udp")
      return { error: "a PORT needs PROTO tcp or udp before it" };
    out.port = dport;
  }
  const sport = port(q.sport, "--sport");
  if (typeof sport === "object") return sport;
  if (sport !== undefined) out.sport = sport;
  if (q.iif !== undefined) out.iif = q.iif;
  if (q.local) out.local = true;
  return out;
}

export function describeQuery(q: Query): string {
  const l4 = q.proto ? ` ${q.proto}${q.port !== undefined ? `/${q.port}` : ""}` : "";
  const sp = q.sport !== undefined ? ` (source port ${q.sport})` : "";
  return `${q.src.text} → ${q.dst.text}${l4}${sp}`;
}
