import { parseAddr } from "../net/ip.ts";
import { exec } from "./exec.ts";

/**
 * Conntrack for services: forgetting the UDP flows pinned to a backend that went away. (What each
 * backend holds now comes from the event stream: conntrack-events.ts.)
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
