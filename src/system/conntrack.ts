import { formatHostPort, parseAddr } from "../net/ip.ts";
import { exec } from "./exec.ts";

/**
 * Conntrack for services: how many connections each backend of a VIP:port holds (least-conn),
 * and forgetting the UDP flows pinned to a backend that went away.
 */
export interface ServiceFlows {
  family: 4 | 6;
  protocol: "tcp" | "udp";
  vip: string;
  port: number;
}

export interface ConntrackOptions {
  netns?: string;
}

/** TCP states that hold a backend's attention; TIME_WAIT, CLOSE and the FIN states do not. */
const OPEN_TCP = new Set(["SYN_SENT", "SYN_RECV", "ESTABLISHED"]);

function checked(f: ServiceFlows): string[] {
  const vip = parseAddr(f.vip);
  if (!vip || vip.family !== f.family) throw new Error(`bad VIP ${f.vip} for IPv${f.family}`);
  if (!Number.isInteger(f.port) || f.port < 1 || f.port > 65535) throw new Error(`bad port ${f.port}`);
  if (f.protocol !== "tcp" && f.protocol !== "udp") throw new Error(`bad protocol ${String(f.protocol)}`);
  return [
    "-f",
    f.family === 4 ? "ipv4" : "ipv6",
    "-p",
    f.protocol,
    "--orig-dst",
    vip.text,
    "--orig-port-dst",
    String(f.port),
  ];
}

/**
 * `conntrack -L` text → open connections per backend (`ADDRESS:PORT` in canonical form, the
 * reply direction's source). Pure, for tests.
 */
export function countByBackend(text: string, protocol: "tcp" | "udp"): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== protocol) continue;
    if (protocol === "tcp" && !OPEN_TCP.has(words[3] ?? "")) continue;
    const src = words.filter((w) => w.startsWith("src=")).map((w) => w.slice(4));
    const sport = words.filter((w) => w.startsWith("sport=")).map((w) => Number(w.slice(6)));
    const addr = parseAddr(src[1] ?? "");
    const port = sport[1];
    if (!addr || port === undefined || !Number.isInteger(port)) continue;
    const key = formatHostPort(addr, port);
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

/** Open connections per backend of one service (keys as `formatHostPort` writes them). */
export async function countServiceConnections(
  f: ServiceFlows,
  opts: ConntrackOptions = {},
): Promise<Map<string, number>> {
  const argv = ["conntrack", "-L", ...checked(f)];
  const r = await exec(argv, { timeoutMs: 10_000, ...opts });
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return countByBackend(r.stdout, f.protocol);
}

/**
 * Delete the flows of a service that conntrack pins to `backend`, so the client's next datagram
 * is a new connection and gets a live backend. Returns how many entries went.
 */
export async function deleteBackendFlows(
  f: ServiceFlows,
  backend: { address: string; port: number },
  opts: ConntrackOptions = {},
): Promise<number> {
  const b = parseAddr(backend.address);
  if (!b || b.family !== f.family) throw new Error(`bad backend address ${backend.address}`);
  if (!Number.isInteger(backend.port) || backend.port < 1 || backend.port > 65535)
    throw new Error(`bad backend port ${backend.port}`);
  const argv = [
    "conntrack",
    "-D",
    ...checked(f),
    "--reply-src",
    b.text,
    "--reply-port-src",
    String(backend.port),
  ];
  const r = await exec(argv, { timeoutMs: 10_000, ...opts });
  const out = `${r.stdout}\n${r.stderr}`;
  const n = /(\d+) flow entries have been deleted/.exec(out);
  // conntrack exits 1 when nothing matched; that is success here.
  if (r.code !== 0 && !n) throw new Error(`${argv.join(" ")} exited ${r.code}: ${out.trim()}`);
  return n ? Number(n[1]) : 0;
}
