// The bench topology: one or more routers side by side, each with N uplink veths to ONE shared
// upstream namespace (every uplink's gateway and the servers), and an optional client namespace
// with one LAN veth to each router.
//
//   client lanK ── lan0 routerK u0 ── rKg0 ┐
//   198.51.100.(8K+2)   .(8K+1)  …  ──  …   ├ upstream (203.0.113.(10+K) on lo: router K's server)
//                                uN-1 ── rKgN-1┘  uplink i of router K: 100.64.K.(4i+2)/30, gateway .(4i+1)
//
// Routers side by side let a bench configure each once and then interleave measurements between
// them at no cost: the client picks a router by the server address it connects to.
import type { BenchNet } from "./bench-net.ts";

export const MAX_ROUTERS = 31;
export const MAX_UPLINKS = 63;
export const ROUTER_LAN_IF = "lan0";

export interface BenchUplink {
  index: number;
  /** Router side. */
  iface: string;
  /** Upstream side. */
  peer: string;
  address: string;
  gateway: string;
}

export interface BenchRouter {
  index: number;
  role: string;
  ns: string;
  uplinks: BenchUplink[];
  /** The server address whose traffic crosses this router. */
  server: string;
  lan: { prefix: string; router: string; client: string; clientIf: string };
}

export interface UplinkTopology {
  routers: BenchRouter[];
  upstream: string;
  client: string | undefined;
}

export function benchUplink(router: number, i: number): BenchUplink {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_UPLINKS) throw new Error(`uplink index ${i}`);
  return {
    index: i,
    iface: `u${i}`,
    peer: `r${router}g${i}`,
    address: `100.64.${router}.${4 * i + 2}`,
    gateway: `100.64.${router}.${4 * i + 1}`,
  };
}

function benchRouter(k: number, role: string, ns: string, uplinks: number): BenchRouter {
  if (!Number.isInteger(k) || k < 0 || k >= MAX_ROUTERS) throw new Error(`router index ${k}`);
  if (!Number.isInteger(uplinks) || uplinks < 1) throw new Error(`router ${role}: uplinks ${uplinks}`);
  return {
    index: k,
    role,
    ns,
    uplinks: Array.from({ length: uplinks }, (_, i) => benchUplink(k, i)),
    server: `203.0.113.${10 + k}`,
    lan: {
      prefix: `198.51.100.${8 * k}/29`,
      router: `198.51.100.${8 * k + 1}`,
      client: `198.51.100.${8 * k + 2}`,
      clientIf: `lan${k}`,
    },
  };
}

/** IPv6 off everywhere: no DAD, router solicitations or MLD chatter inside a measurement. */
const NO_V6 = { "net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1 };

export async function buildUplinkTopology(
  net: BenchNet,
  opts: { routers: readonly { role: string; uplinks: number }[]; client: boolean },
): Promise<UplinkTopology> {
  const upstream = await net.addNs("upstream");
  const client = opts.client ? await net.addNs("client") : undefined;
  const routers: BenchRouter[] = [];
  for (const [k, r] of opts.routers.entries())
    routers.push(benchRouter(k, r.role, await net.addNs(r.role), r.uplinks));

  // Sysctls first: `default` values are copied into the interfaces created afterwards.
  for (const r of routers)
    await net.sysctl(r.role, {
      ...NO_V6,
      "net.ipv4.ip_forward": 1,
      // Replies come back on whichever uplink the connection left by; main's route says u0.
      "net.ipv4.conf.all.rp_filter": 0,
      "net.ipv4.conf.default.rp_filter": 0,
    });
  await net.sysctl("upstream", { ...NO_V6 });
  if (client)
    await net.sysctl("client", {
      ...NO_V6,
      // Tens of thousands of short connections to each server within a minute.
      "net.ipv4.ip_local_port_range": "1024 65000",
      "net.ipv4.tcp_tw_reuse": 1,
    });

  const veths: string[] = [];
  for (const r of routers) {
    for (const u of r.uplinks)
      veths.push(`link add name ${u.iface} netns ${r.ns} type veth peer name ${u.peer} netns ${upstream}`);
    if (client)
      veths.push(
        `link add name ${ROUTER_LAN_IF} netns ${r.ns} type veth peer name ${r.lan.clientIf} netns ${client}`,
      );
  }
  await net.ipBatchRoot(veths);

  const upstreamLines: string[] = [];
  const clientLines: string[] = [];
  for (const r of routers) {
    const u0 = r.uplinks[0] as BenchUplink;
    await net.ipBatch(r.role, [
      ...r.uplinks.flatMap((u) => [`addr add ${u.address}/30 dev ${u.iface}`, `link set ${u.iface} up`]),
      ...(client ? [`addr add ${r.lan.router}/29 dev ${ROUTER_LAN_IF}`, `link set ${ROUTER_LAN_IF} up`] : []),
      // Plain forwarding's single path, and the main table's default when nflb or iptables steer.
      `route add default via ${u0.gateway}`,
    ]);
    upstreamLines.push(
      ...r.uplinks.flatMap((u) => [`addr add ${u.gateway}/30 dev ${u.peer}`, `link set ${u.peer} up`]),
      `addr add ${r.server}/32 dev lo`,
      // Only plain forwarding (no NAT) needs this; NATed traffic comes from the uplinks' own /30s.
      `route add ${r.lan.prefix} via ${u0.address}`,
    );
    clientLines.push(
      `addr add ${r.lan.client}/29 dev ${r.lan.clientIf}`,
      `link set ${r.lan.clientIf} up`,
      `route add ${r.server}/32 via ${r.lan.router}`,
    );
  }
  await net.ipBatch("upstream", upstreamLines);
  if (client) await net.ipBatch("client", clientLines);
  return { routers, upstream, client };
}
