// Real components for uplinks that come and go, started inside a lab's namespaces with argv
// arrays: a DHCP server (dnsmasq, DHCP only, no DNS), a DHCP client (busybox udhcpc with the
// lab's lease script), and OpenVPN tunnels (TLS with a throwaway CA made by openssl). Used by
// test/lab/dynamic-uplinks.test.ts, test/lab/tunnel-uplinks.test.ts and bench/dynamic-uplinks.ts.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exec } from "../system/exec.ts";
import type { NetnsLab } from "./lab.ts";
import type { TrackedProcess } from "./processes.ts";

export const UDHCPC_SCRIPT = fileURLToPath(new URL("./tools/udhcpc-script.sh", import.meta.url));

/** Why the tools are missing, or undefined when all are installed. */
export async function missingTools(tools: readonly string[]): Promise<string | undefined> {
  for (const t of tools) {
    const r = await exec(["sh", "-c", 'command -v "$0"', t], { timeoutMs: 5000 });
    if (r.code !== 0) return `${t} is not installed (scripts/ensure-deps)`;
  }
  return undefined;
}

export interface DhcpServerOptions {
  role: string;
  dev: string;
  /** First and last address of the pool, and the router option. */
  from: string;
  to: string;
  router: string;
  /** The lease file (a temp dir of the caller's). */
  leaseFile: string;
}

/** dnsmasq as a DHCP server only (`--port=0`: no DNS), in the foreground, with its own lease file. */
export function startDhcpServer(lab: NetnsLab, o: DhcpServerOptions): TrackedProcess {
  return lab.spawn(o.role, [
    "dnsmasq",
    "--keep-in-foreground",
    "--log-facility=-",
    "--conf-file=/dev/null",
    "--no-resolv",
    "--no-hosts",
    "--port=0",
    `--interface=${o.dev}`,
    "--bind-interfaces",
    "--dhcp-authoritative",
    `--dhcp-range=${o.from},${o.to},255.255.255.0,10m`,
    `--dhcp-option=option:router,${o.router}`,
    `--dhcp-leasefile=${o.leaseFile}`,
  ]);
}

/** udhcpc in the foreground on `dev`, applying leases with the lab's script. */
export function startDhcpClient(lab: NetnsLab, role: string, dev: string): TrackedProcess {
  return lab.spawn(role, ["udhcpc", "-f", "-i", dev, "-s", UDHCPC_SCRIPT, "-t", "20", "-T", "1", "-A", "1"]);
}

/** Make the client ask again at once: release (SIGUSR2), then renew (SIGUSR1), by pid. */
export async function forceNewLease(client: TrackedProcess): Promise<void> {
  await exec(["kill", "-USR2", String(client.pid)], { timeoutMs: 5000 });
  await exec(["kill", "-USR1", String(client.pid)], { timeoutMs: 5000 });
}

/** The global IPv4 addresses of a device in a lab namespace (none when it does not exist). */
export async function addresses4(lab: NetnsLab, role: string, dev: string): Promise<string[]> {
  const r = await lab.exec(role, ["ip", "-j", "-4", "addr", "show", "dev", dev]);
  if (r.code !== 0) return [];
  const links = JSON.parse(r.stdout || "[]") as { addr_info?: { local: string; scope: string }[] }[];
  return links.flatMap((l) => (l.addr_info ?? []).filter((a) => a.scope === "global").map((a) => a.local));
}

async function openssl(dir: string, args: string[]): Promise<void> {
  // Bare file names are the PKI directory's.
  const abs = args.map((a) => (/^[a-z]+\.(key|crt|csr|srl)$/.test(a) ? join(dir, a) : a));
  const r = await exec(["openssl", ...abs], { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
}

/** A throwaway CA in `dir` and one certificate for the servers and one for the clients (EC P-256, 2 days). */
export async function makeTunnelPki(dir: string): Promise<void> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(dir, [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=nflb-lab-ca",
  ]);
  for (const n of ["server", "client"]) {
    await openssl(dir, ["req", ...ec, "-keyout", `${n}.key`, "-out", `${n}.csr`, "-subj", `/CN=${n}`]);
    await openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${n}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-CAserial",
      "ca.srl",
      "-out",
      `${n}.crt`,
      "-days",
      "2",
    ]);
  }
}

/** Transport veth between a lab's router and internet namespaces (the tunnels run over it). */
export const TUNNEL_TRANSPORT = {
  routerIf: "vpnu0",
  inetIf: "vpnd0",
  router: "100.64.250.1",
  inet: "100.64.250.2",
} as const;

/** Tunnel i: its devices, point-to-point addresses and UDP port. */
export function tunnelPlan(i: number) {
  return {
    dev: `tun${i}`,
    serverDev: `tuns${i}`,
    client: `100.64.20${i}.2`,
    server: `100.64.20${i}.1`,
    port: 1193 + i,
  };
}

/**
 * An OpenVPN end of tunnel i (`dev tun`, p2p, TLS), in the foreground: the server in `inet`
 * listening on the transport address, the client in `router`.
 */
export function startOpenvpn(
  lab: NetnsLab,
  side: "server" | "client",
  i: number,
  pkiDir: string,
): TrackedProcess {
  const t = tunnelPlan(i);
  const pki = [
    "--ca",
    join(pkiDir, "ca.crt"),
    "--cert",
    join(pkiDir, `${side}.crt`),
    "--key",
    join(pkiDir, `${side}.key`),
  ];
  const common = [
    "--dev-type",
    "tun",
    "--proto",
    "udp",
    "--verb",
    "3",
    "--ping",
    "1",
    "--ping-restart",
    "10",
    ...pki,
  ];
  const pid = ["--writepid", join(pkiDir, `${side}${i}.pid`)];
  const argv =
    side === "server"
      ? [
          "openvpn",
          "--dev",
          t.serverDev,
          ...common,
          "--ifconfig",
          t.server,
          t.client,
          "--local",
          TUNNEL_TRANSPORT.inet,
          "--port",
          String(t.port),
          "--tls-server",
          "--dh",
          "none",
          // A client restarted from another port is taken at once, not after --ping-restart.
          "--float",
          ...pid,
        ]
      : [
          "openvpn",
          "--dev",
          t.dev,
          ...common,
          "--ifconfig",
          t.client,
          t.server,
          "--remote",
          TUNNEL_TRANSPORT.inet,
          String(t.port),
          "--nobind",
          "--tls-client",
          ...pid,
        ];
  return lab.spawn(side === "server" ? "inet" : "router", argv);
}
