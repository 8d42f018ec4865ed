// The uplink lab: LAN client(s) → router (nflb's box, wan1..wanN, no default route) → one ISP
// namespace per uplink → a shared "internet" namespace with servers and probe targets.
//
//   lan ──lan0┐            ┌cust isp1 transit── isp1┐
//             router wan1 ─┘                   ├ inet (203.0.113.10, 198.18.200.1/2)
//                    wanN ── cust ispN transit── ispN┘
import { exec } from "../system/exec.ts";
import {
  HOST_LINK,
  INTERNET,
  LAN,
  MAX_LAN_CLIENTS,
  MAX_UPLINKS,
  PORTS,
  extraClientAddresses,
  lanClientAddress,
  uplinkPlan,
  type UplinkPlan,
} from "./addressing.ts";
import {
  ISP_CUSTOMER_IF,
  ISP_TABLE,
  ISP_UPSTREAM_IF,
  parseIspCounters,
  renderIspControl,
  renderIspTable,
  type IspControl,
  type IspCounters,
} from "./isp-firewall.ts";
import { NetnsLab } from "./lab.ts";
import { hostLinkName } from "./names.ts";
import { ipBatch } from "./netns.ts";
import type { TrackedProcess } from "./processes.ts";

export interface UplinkLabOptions {
  /** 1..8 uplinks, each through its own ISP namespace. */
  uplinks: number;
  /** Also configure IPv6 everywhere. */
  v6?: boolean;
  /** LAN client namespaces (default 1: `lan`; more: `lan2`, `lan3`… behind a bridge `lan0`). */
  lanClients?: number;
  /** Extra source addresses 198.18.0.10… on the first client, for many-source tests. */
  clientAddresses?: number;
  /** A veth from the root namespace to the router (100.64.255.1 ↔ .2) for a browser on the host. */
  hostLink?: boolean;
}

export interface UplinkLabNames {
  router: string;
  /** The first LAN client. */
  lan: string;
  lanClients: string[];
  /** By uplink index, 1-based: `ns.isp[1]`. */
  isp: Record<number, string>;
  inet: string;
}

export interface UplinkLabAddresses {
  lan: {
    router4: string;
    router6: string;
    /** Primary address of each client, first client first. */
    clients: { v4: string; v6: string }[];
    /** Extra source addresses on the first client. */
    extra: string[];
  };
  server4: string;
  server6: string;
  targets4: readonly string[];
  targets6: readonly string[];
  hostLink?: { hostIf: string; host4: string; router4: string };
}

/** The router's interface facing the host link. */
export const ROUTER_HOST_IF = "host0";
/** The LAN side of the router (a veth, or a bridge when there are several clients). */
export const ROUTER_LAN_IF = "lan0";

export class UplinkLab extends NetnsLab {
  readonly options: Required<UplinkLabOptions>;
  readonly uplinks: UplinkPlan[];
  readonly ports = PORTS;
  readonly addr: UplinkLabAddresses;
  private readonly control = new Map<number, IspControl>();
  private inetServer: TrackedProcess | undefined;

  constructor(opts: UplinkLabOptions) {
    super();
    const o: Required<UplinkLabOptions> = {
      uplinks: opts.uplinks,
      v6: opts.v6 ?? false,
      lanClients: opts.lanClients ?? 1,
      clientAddresses: opts.clientAddresses ?? 0,
      hostLink: opts.hostLink ?? false,
    };
    if (!Number.isInteger(o.uplinks) || o.uplinks < 1 || o.uplinks > MAX_UPLINKS) {
      throw new Error(`uplinks must be 1..${MAX_UPLINKS}`);
    }
    if (!Number.isInteger(o.lanClients) || o.lanClients < 1 || o.lanClients > MAX_LAN_CLIENTS) {
      throw new Error(`lanClients must be 1..${MAX_LAN_CLIENTS}`);
    }
    this.options = o;
    this.uplinks = Array.from({ length: o.uplinks }, (_, n) => uplinkPlan(n + 1));
    this.addr = {
      lan: {
        router4: LAN.router4,
        router6: LAN.router6,
        clients: Array.from({ length: o.lanClients }, (_, n) => lanClientAddress(n + 1)),
        extra: extraClientAddresses(o.clientAddresses),
      },
      server4: INTERNET.server4,
      server6: INTERNET.server6,
      targets4: INTERNET.targets4,
      targets6: INTERNET.targets6,
      ...(o.hostLink
        ? {
            hostLink: {
              hostIf: hostLinkName(this.prefix),
              host4: HOST_LINK.host4,
              router4: HOST_LINK.router4,
            },
          }
        : {}),
    };
  }

  /** Namespace names. Valid once build() has started. */
  get ns(): UplinkLabNames {
    const isp: Record<number, string> = {};
    for (const u of this.uplinks) isp[u.index] = this.netns(`isp${u.index}`);
    return {
      router: this.netns("router"),
      lan: this.netns("lan"),
      lanClients: this.addr.lan.clients.map((_, n) => this.netns(lanRole(n + 1))),
      isp,
      inet: this.netns("inet"),
    };
  }

  uplink(i: number): UplinkPlan {
    const u = this.uplinks[i - 1];
    if (!u) throw new Error(`lab has no uplink ${i}`);
    return u;
  }

  async build(): Promise<this> {
    await this.runBuild(async () => {
      if (this.options.hostLink) await assertHostLinkFree();
      const roles = ["router", "inet", ...this.uplinks.map((u) => `isp${u.index}`)];
      for (let k = 1; k <= this.options.lanClients; k++) roles.push(lanRole(k));
      await Promise.all(roles.map((r) => this.addRole(r)));
      this.check();
      await ipBatch(undefined, this.vethLines());
      this.check();
      await Promise.all([
        this.configureRouter(),
        this.configureLan(),
        this.configureInet(),
        ...this.uplinks.map((u) => this.configureIsp(u)),
        this.configureHostLink(),
      ]);
      this.check();
      this.inetServer = await this.startEchoServer({
        role: "inet",
        name: "inet",
        hold: true,
        ...inetListeners(this.options.v6),
      });
      await this.settle();
    });
    return this;
  }

  /** Every veth is created with both ends already inside their namespaces. */
  private vethLines(): string[] {
    const ns = (role: string) => this.netns(role);
    const lines: string[] = [];
    for (const u of this.uplinks) {
      const isp = ns(`isp${u.index}`);
      lines.push(
        `link add name ${u.wanIf} netns ${ns("router")} type veth peer name ${ISP_CUSTOMER_IF} netns ${isp}`,
      );
      lines.push(
        `link add name ${ISP_UPSTREAM_IF} netns ${isp} type veth peer name isp${u.index} netns ${ns("inet")}`,
      );
    }
    if (this.options.lanClients === 1) {
      lines.push(
        `link add name ${ROUTER_LAN_IF} netns ${ns("router")} type veth peer name eth0 netns ${ns("lan")}`,
      );
    } else {
      for (let k = 1; k <= this.options.lanClients; k++) {
        lines.push(
          `link add name lanp${k} netns ${ns("router")} type veth peer name eth0 netns ${ns(lanRole(k))}`,
        );
      }
    }
    if (this.options.hostLink) {
      lines.push(
        `link add name ${hostLinkName(this.prefix)} type veth peer name ${ROUTER_HOST_IF} netns ${ns("router")}`,
      );
    }
    return lines;
  }

  private async configureRouter(): Promise<void> {
    const v6 = this.options.v6;
    const lines: string[] = [];
    if (this.options.lanClients > 1) {
      lines.push(`link add name ${ROUTER_LAN_IF} type bridge`);
      for (let k = 1; k <= this.options.lanClients; k++)
        lines.push(`link set lanp${k} master ${ROUTER_LAN_IF} up`);
    }
    lines.push(`addr add ${LAN.router4}/24 dev ${ROUTER_LAN_IF}`);
    if (v6) lines.push(`addr add ${LAN.router6}/64 dev ${ROUTER_LAN_IF} nodad`);
    lines.push(`link set ${ROUTER_LAN_IF} up`);
    for (const u of this.uplinks) {
      lines.push(`addr add ${u.router4}/24 dev ${u.wanIf}`);
      if (v6) lines.push(`addr add ${u.router6}/64 dev ${u.wanIf} nodad`);
      lines.push(`link set ${u.wanIf} up`);
    }
    if (this.options.hostLink) {
      lines.push(`addr add ${HOST_LINK.router4}/${HOST_LINK.prefixLen} dev ${ROUTER_HOST_IF}`);
      lines.push(`link set ${ROUTER_HOST_IF} up`);
    }
    // Deliberately no default route, forwarding or NAT: installing those is nflb's job.
    await ipBatch(this.netns("router"), lines);
  }

  private async configureLan(): Promise<void> {
    const v6 = this.options.v6;
    await Promise.all(
      this.addr.lan.clients.map(async (a, n) => {
        const lines = [`addr add ${a.v4}/24 dev eth0`];
        if (n === 0) for (const x of this.addr.lan.extra) lines.push(`addr add ${x}/24 dev eth0`);
        if (v6) lines.push(`addr add ${a.v6}/64 dev eth0 nodad`);
        lines.push("link set eth0 up", `route add default via ${LAN.router4}`);
        if (v6) lines.push(`route add ::/0 via ${LAN.router6}`);
        await ipBatch(this.netns(lanRole(n + 1)), lines);
      }),
    );
  }

  private async configureIsp(u: UplinkPlan): Promise<void> {
    const v6 = this.options.v6;
    const ns = this.netns(`isp${u.index}`);
    // carrierDown() sets `cust` down; keep its IPv6 addresses so carrierUp() needs no redo.
    const sysctls = ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"];
    sysctls.push(`net.ipv6.conf.${ISP_CUSTOMER_IF}.keep_addr_on_down=1`);
    await this.run(`isp${u.index}`, ["sysctl", "-qw", ...sysctls]);
    const lines = [
      `addr add ${u.gateway4}/24 dev ${ISP_CUSTOMER_IF}`,
      `addr add ${u.ispUp4}/24 dev ${ISP_UPSTREAM_IF}`,
    ];
    if (v6) {
      lines.push(`addr add ${u.gateway6}/64 dev ${ISP_CUSTOMER_IF} nodad`);
      lines.push(`addr add ${u.ispUp6}/64 dev ${ISP_UPSTREAM_IF} nodad`);
    }
    lines.push(`link set ${ISP_CUSTOMER_IF} up`, `link set ${ISP_UPSTREAM_IF} up`);
    lines.push(`route add default via ${u.inetSide4}`);
    if (v6) lines.push(`route add ::/0 via ${u.inetSide6}`);
    await ipBatch(ns, lines);
    await this.run(`isp${u.index}`, ["nft", "-f", "-"], { input: renderIspTable(u.prefix4, u.prefix6) });
    this.control.set(u.index, { cut: false, loss: 0 });
  }

  private async configureInet(): Promise<void> {
    const v6 = this.options.v6;
    const lines: string[] = [];
    for (const a of [INTERNET.server4, ...INTERNET.targets4]) lines.push(`addr add ${a}/32 dev lo`);
    if (v6)
      for (const a of [INTERNET.server6, ...INTERNET.targets6]) lines.push(`addr add ${a}/128 dev lo nodad`);
    for (const u of this.uplinks) {
      const dev = `isp${u.index}`;
      lines.push(`addr add ${u.inetSide4}/24 dev ${dev}`);
      if (v6) lines.push(`addr add ${u.inetSide6}/64 dev ${dev} nodad`);
      lines.push(`link set ${dev} up`);
      // Replies find their way back through the ISP that owns the customer prefix.
      lines.push(`route add ${u.prefix4} via ${u.ispUp4}`);
      if (v6) lines.push(`route add ${u.prefix6} via ${u.ispUp6}`);
    }
    await ipBatch(this.netns("inet"), lines);
  }

  private async configureHostLink(): Promise<void> {
    if (!this.options.hostLink) return;
    const dev = hostLinkName(this.prefix);
    // No IPv6 on the host side: no link-local chatter or router solicitations from the root namespace.
    await exec(["sysctl", "-qw", `net.ipv6.conf.${dev}.disable_ipv6=1`], { timeoutMs: 5000 });
    await ipBatch(undefined, [
      `addr add ${HOST_LINK.host4}/${HOST_LINK.prefixLen} dev ${dev}`,
      `link set ${dev} up`,
    ]);
  }

  /** ISP i stays reachable (carrier and its own address) but forwards nothing. */
  cutUpstream(i: number): Promise<void> {
    return this.setControl(i, { cut: true });
  }

  restoreUpstream(i: number): Promise<void> {
    return this.setControl(i, { cut: false });
  }

  /** ISP i forwards no IPv6 (a broken IPv6 gateway); IPv4 goes on. */
  cutUpstream6(i: number): Promise<void> {
    return this.setControl(i, { cut6: true });
  }

  restoreUpstream6(i: number): Promise<void> {
    return this.setControl(i, { cut6: false });
  }

  /** ISP i answers every TCP connection toward the internet with a RST (on: true); pings still pass. */
  setRefuse(i: number, on: boolean): Promise<void> {
    return this.setControl(i, { refuse: on });
  }

  /** Drop this fraction (0..1) of the packets ISP i forwards from the router toward the internet. */
  setLoss(i: number, ratio: number): Promise<void> {
    return this.setControl(i, { loss: ratio });
  }

  /** The router sees NO-CARRIER on wan i. */
  async carrierDown(i: number): Promise<void> {
    this.uplink(i);
    await this.run(`isp${i}`, ["ip", "link", "set", "dev", ISP_CUSTOMER_IF, "down"]);
  }

  async carrierUp(i: number): Promise<void> {
    this.uplink(i);
    await this.run(`isp${i}`, ["ip", "link", "set", "dev", ISP_CUSTOMER_IF, "up"]);
  }

  async ispCounters(i: number): Promise<IspCounters> {
    this.uplink(i);
    return parseIspCounters(await this.run(`isp${i}`, ["nft", "-j", "list", "table", "inet", ISP_TABLE]));
  }

  async resetIspCounters(i: number): Promise<void> {
    this.uplink(i);
    const t = `inet ${ISP_TABLE}`;
    const input = [`reset counters table ${t}`, `flush set ${t} arrived4`, `flush set ${t} arrived6`].join(
      "\n",
    );
    await this.run(`isp${i}`, ["nft", "-f", "-"], { input: input + "\n" });
  }

  /** The internet namespace's server process (echo, HTTP, DNS on every server/target address). */
  get internetServer(): TrackedProcess | undefined {
    return this.inetServer;
  }

  private async setControl(i: number, change: Partial<IspControl>): Promise<void> {
    this.uplink(i);
    const next = { ...(this.control.get(i) ?? { cut: false, loss: 0 }), ...change };
    await this.run(`isp${i}`, ["nft", "-f", "-"], { input: renderIspControl(next) });
    this.control.set(i, next);
  }
}

function lanRole(k: number): string {
  return k === 1 ? "lan" : `lan${k}`;
}

/** Listeners of the internet server: echo on the server address, probe services on every address. */
function inetListeners(v6: boolean) {
  const servers = [
    INTERNET.server4,
    ...INTERNET.targets4,
    ...(v6 ? [INTERNET.server6, ...INTERNET.targets6] : []),
  ];
  const at = (port: number) => servers.map((address) => ({ address, port }));
  return {
    tcp: [...at(PORTS.echo), ...at(PORTS.tcp)],
    udp: at(PORTS.echo),
    http: at(PORTS.http),
    dns: at(PORTS.dns),
  };
}

/** Two labs with a host link would both claim 100.64.255.0/30 in the root namespace. */
async function assertHostLinkFree(): Promise<void> {
  const r = await exec(
    ["ip", "-j", "-4", "addr", "show", "to", `${HOST_LINK.host4}/${HOST_LINK.prefixLen}`],
    {
      timeoutMs: 5000,
    },
  );
  const parsed = r.stdout.trim() ? (JSON.parse(r.stdout) as { ifname: string }[]) : [];
  if (parsed.length > 0) {
    throw new Error(
      `host link address ${HOST_LINK.host4}/${HOST_LINK.prefixLen} already in use on ${parsed.map((p) => p.ifname).join(", ")}`,
    );
  }
}

/** Build an uplink lab; on failure everything created so far is removed before the error is thrown. */
export async function buildUplinkLab(opts: UplinkLabOptions): Promise<UplinkLab> {
  const lab = new UplinkLab(opts);
  try {
    return await lab.build();
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}
