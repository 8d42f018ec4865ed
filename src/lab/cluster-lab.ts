// The cluster lab: N nodes sharing one VIP on one L2 segment, an etcd, and a client behind a router.
//
//   client (60 sources) ── router ──┐
//                                   sw: bridge br0 (a plain switch)
//              etcd ─────────────────┤
//              node1 … nodeN ────────┘   each: VIP 192.0.2.2, agent, echo-server on :7000
//
// The router reaches the VIP through a static ARP entry for the cluster's multicast MAC (what an
// upstream router needs; see docs/CLUSTER.md).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { clusterMac } from "../cluster/render.ts";
import { repoPath, tsxArgv } from "../paths.ts";
import { NetnsLab } from "./lab.ts";
import { ipBatch } from "./netns.ts";
import type { TrackedProcess } from "./processes.ts";

export const CLUSTER_LAB = {
  vip: "192.0.2.2",
  router: "192.0.2.1",
  etcd: "192.0.2.250",
  clientGateway: "198.18.0.1",
  port: 7000,
  etcdUrl: "http://192.0.2.250:2379",
} as const;

export const MAX_CLUSTER_NODES = 8;

export interface ClusterLabOptions {
  nodes: number;
  /** Client source addresses 198.18.0.10 upward (default 60). */
  sources?: number;
  lease?: string;
  buckets?: number;
  /** Give the router a permanent ARP entry for the VIP (default); false: it must learn it by ARP. */
  staticArp?: boolean;
}

/** The agent's snapshot, as the daemon logs it (`msg: "cluster state"`) and serves it in status. */
export interface AgentSnapshotLine {
  node: string;
  buckets_owned: number;
  owned: number[];
  config_version: number | null;
  mode: string;
  etcd: boolean;
  members: {
    node: string;
    buckets: number;
    target: number;
    config_version: number | null;
    config_error: string | null;
  }[];
}

export class ClusterLab extends NetnsLab {
  readonly options: Required<ClusterLabOptions>;
  readonly sources: string[];
  private dir = "";
  private etcdProc: TrackedProcess | undefined;
  private readonly agents = new Map<number, TrackedProcess>();
  private readonly servers = new Map<number, TrackedProcess>();

  constructor(opts: ClusterLabOptions) {
    super();
    if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > MAX_CLUSTER_NODES)
      throw new Error(`nodes must be 1..${MAX_CLUSTER_NODES}`);
    this.options = {
      nodes: opts.nodes,
      sources: opts.sources ?? 60,
      lease: opts.lease ?? "2s",
      buckets: opts.buckets ?? 256,
      staticArp: opts.staticArp ?? true,
    };
    if (this.options.sources < 1 || this.options.sources > 200) throw new Error("sources must be 1..200");
    this.sources = Array.from({ length: this.options.sources }, (_, n) => `198.18.0.${10 + n}`);
  }

  get nodeIndexes(): number[] {
    return Array.from({ length: this.options.nodes }, (_, i) => i + 1);
  }

  nodeAddress(i: number): string {
    return `192.0.2.${10 + i}`;
  }

  configPath(i: number): string {
    return `${this.dir}/node${i}.yaml`;
  }

  /** A node's config text; `extra` is appended verbatim (top-level keys). */
  configText(i: number, extra = ""): string {
    const o = this.options;
    return [
      "version: 1",
      "cluster:",
      "  name: lab",
      `  node: node${i}`,
      `  vip: ${CLUSTER_LAB.vip}`,
      "  interface: eth0",
      `  buckets: ${o.buckets}`,
      `  etcd: [${CLUSTER_LAB.etcdUrl}]`,
      `  lease: ${o.lease}`,
      extra,
    ].join("\n");
  }

  async writeFile(name: string, text: string): Promise<string> {
    const p = `${this.dir}/${name}`;
    await writeFile(p, text);
    return p;
  }

  build(): Promise<void> {
    return this.runBuild(async () => {
      this.dir = await mkdtemp(`${tmpdir()}/nflb-cluster-lab-`);
      const roles = ["sw", "etcd", "router", "client", ...this.nodeIndexes.map((i) => `node${i}`)];
      for (const r of roles) await this.addRole(r);
      const sw = this.netns("sw");
      // A plain switch: learning, flooding, no IGMP snooping.
      await ipBatch(sw, ["link add br0 type bridge mcast_snooping 0", "link set br0 up"]);
      const seg: [string, string][] = [
        ["etcd", `${CLUSTER_LAB.etcd}/24`],
        ["router", `${CLUSTER_LAB.router}/24`],
        ...this.nodeIndexes.map((i): [string, string] => [`node${i}`, `${this.nodeAddress(i)}/24`]),
      ];
      for (const [role, cidr] of seg) {
        await ipBatch(sw, [
          `link add p${role} type veth peer name eth0 netns ${this.netns(role)}`,
          `link set p${role} master br0`,
          `link set p${role} up`,
        ]);
        const lines = [`addr add ${cidr} dev eth0`, "link set eth0 up"];
        if (role.startsWith("node")) lines.push(`route add default via ${CLUSTER_LAB.router}`);
        await ipBatch(this.netns(role), lines);
      }
      const router = this.netns("router");
      await ipBatch(router, [
        `link add lan0 type veth peer name eth0 netns ${this.netns("client")}`,
        `addr add ${CLUSTER_LAB.clientGateway}/24 dev lan0`,
        "link set lan0 up",
        ...(this.options.staticArp
          ? [`neigh replace ${CLUSTER_LAB.vip} lladdr ${clusterMac(CLUSTER_LAB.vip)} dev eth0 nud permanent`]
          : []),
      ]);
      await this.run("router", ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
      await this.run("router", ["nft", "-f", "-"], { input: ROUTER_RST_LOG });
      await ipBatch(this.netns("client"), [
        "addr add 198.18.0.2/24 dev eth0",
        ...this.sources.map((s) => `addr add ${s}/24 dev eth0`),
        "link set eth0 up",
        `route add default via ${CLUSTER_LAB.clientGateway}`,
      ]);
      await this.run("client", ["nft", "-f", "-"], { input: CLIENT_COUNTERS });
      for (const i of this.nodeIndexes) await writeFile(this.configPath(i), this.configText(i));
      await this.startEtcd();
    });
  }

  override async destroy(): Promise<void> {
    await super.destroy();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  async startEtcd(): Promise<void> {
    if (this.etcdProc) return;
    const url = (port: number) => `http://${CLUSTER_LAB.etcd}:${port}`;
    this.etcdProc = this.spawn("etcd", [
      "etcd",
      "--name=lab",
      `--data-dir=${this.dir}/etcd`,
      `--listen-client-urls=${url(2379)}`,
      `--advertise-client-urls=${url(2379)}`,
      `--listen-peer-urls=${url(2380)}`,
      `--initial-advertise-peer-urls=${url(2380)}`,
      `--initial-cluster=lab=${url(2380)}`,
      "--log-level=warn",
    ]);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const r = await this.exec(
        "etcd",
        ["etcdctl", `--endpoints=${CLUSTER_LAB.etcdUrl}`, "endpoint", "health"],
        {
          timeoutMs: 5000,
        },
      );
      if (r.code === 0) return;
      await new Promise((res) => setTimeout(res, 200));
    }
    throw new Error(`etcd did not become healthy: ${this.etcdProc.stderr().slice(-1000)}`);
  }

  /** Stop etcd (SIGTERM, by pid); its data directory stays for startEtcd(). */
  async stopEtcd(): Promise<void> {
    await this.etcdProc?.stop(3000);
    this.etcdProc = undefined;
  }

  etcdctl(args: readonly string[]): Promise<string> {
    return this.run("etcd", ["etcdctl", `--endpoints=${CLUSTER_LAB.etcdUrl}`, ...args]);
  }

  /** `argv` run with the state directory of this lab's nodes. */
  private withState(argv: readonly string[]): string[] {
    return ["env", `NFLB_STATE_DIR=${this.dir}/state`, ...argv];
  }

  /**
   * Start node i's daemon (`nflb run`, which hosts the cluster agent) and wait until it holds its
   * first buckets (or only until the agent reported its first state).
   */
  async startAgent(i: number, opts: { waitOwned?: boolean } = {}): Promise<TrackedProcess> {
    const argv = this.withState(tsxArgv("cli/main.ts", ["run", "-c", this.configPath(i)]));
    const p = this.spawn(`node${i}`, argv);
    this.agents.set(i, p);
    await p.waitForLine(/"msg":"cluster state"/, 20_000);
    if (opts.waitOwned ?? true) await p.waitForLine(/"buckets_owned":[1-9].*"msg":"cluster state"/, 20_000);
    return p;
  }

  /** One connection per source (or `count` spread over them) from the client to the VIP. */
  vipRound(sources: readonly string[] = this.sources, timeoutMs = 2000, count = sources.length) {
    return this.runClient({
      from: "client",
      dst: CLUSTER_LAB.vip,
      port: CLUSTER_LAB.port,
      sources,
      count,
      parallel: 20,
      timeoutMs,
      deadlineMs: 20_000,
    });
  }

  /** `bin/nflb ARGS` in node i's namespace, with the state directory its daemon uses. */
  nflb(i: number, args: readonly string[]): Promise<string> {
    return this.run(`node${i}`, this.withState([repoPath("bin/nflb"), ...args]));
  }

  /** The daemon's log lines (pino JSON) whose message is `msg`, parsed. */
  private logLines(i: number, msg: string): Record<string, unknown>[] {
    return (this.agents.get(i)?.stdout() ?? "")
      .split("\n")
      .filter((l) => l.includes(`"msg":${JSON.stringify(msg)}`))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** The shared config version node i last said it runs, or null. */
  configVersion(i: number): number | null {
    const lines = this.logLines(i, "cluster config running");
    const v = lines[lines.length - 1]?.["version"];
    return typeof v === "number" ? v : null;
  }

  /** Whether node i refused shared config `version`. */
  refusedConfig(i: number, version: number): boolean {
    return this.logLines(i, "cluster: pushed config refused").some((l) => l["version"] === version);
  }

  agent(i: number): TrackedProcess | undefined {
    return this.agents.get(i);
  }

  /** kill -9 the agent: the host stays up, the kernel keeps whatever it was told. */
  async killAgent(i: number): Promise<void> {
    const p = this.agents.get(i);
    if (!p) return;
    p.child.kill("SIGKILL");
    // Lab processes are unref'd: a timer keeps the loop alive while we wait (bounded).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([p.exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    this.agents.delete(i);
  }

  async stopAgent(i: number): Promise<void> {
    await this.agents.get(i)?.stop(5000);
    this.agents.delete(i);
  }

  /** The last cluster state node i's daemon logged. */
  snapshot(i: number): AgentSnapshotLine | null {
    const lines = this.logLines(i, "cluster state");
    const last = lines[lines.length - 1]?.["cluster"];
    return last ? (last as AgentSnapshotLine) : null;
  }

  async startServers(): Promise<void> {
    for (const i of this.nodeIndexes) {
      if (this.servers.has(i)) continue;
      const p = await this.startEchoServer({
        role: `node${i}`,
        name: `node${i}`,
        hold: true,
        tcp: [{ address: "0.0.0.0", port: CLUSTER_LAB.port }],
      });
      this.servers.set(i, p);
    }
  }

  /** Unplug node i from the switch (its eth0 loses carrier) / plug it back. */
  async cutPort(i: number): Promise<void> {
    await this.run("sw", ["ip", "link", "set", `pnode${i}`, "down"]);
  }

  async restorePort(i: number): Promise<void> {
    await this.run("sw", ["ip", "link", "set", `pnode${i}`, "up"]);
  }

  /** Buckets node i's kernel accepts new connections for, from the nft set itself. */
  async kernelBuckets(i: number): Promise<number[]> {
    const r = await this.exec(`node${i}`, ["nft", "-j", "list", "set", "inet", "nflb", "cluster_owned"]);
    if (r.code !== 0) return [];
    const sets = (JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
    const elems = sets.find((o) => o.set)?.set?.elem ?? [];
    return elems
      .map((e) => (typeof e === "number" ? e : (e as { elem?: { val?: number } }).elem?.val))
      .filter((v): v is number => typeof v === "number")
      .sort((a, b) => a - b);
  }

  private async nodeByMac(): Promise<Map<string, string>> {
    const macs = new Map<string, string>();
    for (const i of this.nodeIndexes) {
      const link = JSON.parse(await this.run(`node${i}`, ["ip", "-j", "link", "show", "eth0"])) as {
        address: string;
      }[];
      macs.set(link[0]?.address ?? "", `node${i}`);
    }
    return macs;
  }

  private async routerSet(name: string): Promise<string[][]> {
    const out = await this.run("router", ["nft", "-j", "list", "set", "inet", "lab", name]);
    const set = (JSON.parse(out) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables.find(
      (o) => o.set,
    )?.set;
    return (set?.elem ?? []).map((e) => {
      const c = ((e as { elem?: { val?: unknown } }).elem?.val ?? e) as { concat?: unknown[] };
      return (c.concat ?? []).map(String);
    });
  }

  /** Resets from the VIP the router forwarded: which node sent one to which client source. */
  async resetSenders(): Promise<{ node: string; source: string; port: number }[]> {
    const macs = await this.nodeByMac();
    return (await this.routerSet("rst")).map(([mac = "", source = "", port = "0"]) => ({
      node: macs.get(mac) ?? mac,
      source,
      port: Number(port),
    }));
  }

  /**
   * Connection attempts (identified by the client's ISN, which every SYN-ACK acknowledges) that
   * were answered by more than one node: the thing the cluster must never do.
   */
  async doubleAnswers(): Promise<string[]> {
    const macs = await this.nodeByMac();
    const by = new Map<string, Set<string>>();
    for (const [dst = "", port = "", ack = "", mac = ""] of await this.routerSet("synack")) {
      const k = `${dst}:${port} ack ${ack}`;
      by.set(k, (by.get(k) ?? new Set()).add(macs.get(mac) ?? mac));
    }
    return [...by].filter(([, n]) => n.size > 1).map(([k, n]) => `${k} answered by ${[...n].join(" and ")}`);
  }

  /** Forget what the router recorded (start of a test). */
  async resetRouterLog(): Promise<void> {
    await this.run("router", ["nft", "flush", "set", "inet", "lab", "rst"]);
    await this.run("router", ["nft", "flush", "set", "inet", "lab", "synack"]);
  }

  /** SYN-ACKs and resets the client has received from the VIP since the last reset. */
  async clientCounters(reset = false): Promise<{ synack: number; rst: number }> {
    const out = await this.run("client", [
      "nft",
      "-j",
      reset ? "reset" : "list",
      "counters",
      "table",
      "inet",
      "lab",
    ]);
    const items = (JSON.parse(out) as { nftables: { counter?: { name: string; packets: number } }[] })
      .nftables;
    const get = (n: string) => items.find((o) => o.counter?.name === n)?.counter?.packets ?? 0;
    return { synack: get("synack"), rst: get("rst") };
  }
}

/**
 * How many resets from the node serving a source a test tolerates among `connections` completed
 * exchanges: 5 %, at least 2. Not zero, because they do occur: in about one run in ten, one to
 * three among 120 connections, always after the whole answer was read, always from the source's
 * own node. Captured once: a plain RST (no ACK bit), i.e. the serving node's listening socket
 * answering an ACK-bearing segment of a connection it had already closed, while its conntrack still
 * held it as established (so the cluster filter let it through). Why that socket is gone first is
 * not known yet. A reset from any other node still fails every test: that would be a node touching
 * a connection it does not hold.
 */
export const ownResetAllowance = (connections: number): number => Math.max(2, Math.floor(connections * 0.05));

/** Which segment MAC sent each reset from the VIP: tells a test which node answered out of turn. */
const ROUTER_RST_LOG = `
table inet lab {
  set rst {
    typeof ether saddr . ip daddr . tcp dport
    flags dynamic
    size 4096
  }
  set synack {
    typeof ip daddr . tcp dport . tcp ackseq . ether saddr
    flags dynamic
    size 65535
  }
  chain forw {
    type filter hook forward priority filter; policy accept;
    ip saddr ${CLUSTER_LAB.vip} tcp flags & rst == rst update @rst { ether saddr . ip daddr . tcp dport }
    ip saddr ${CLUSTER_LAB.vip} tcp flags & (syn | ack) == syn | ack update @synack { ip daddr . tcp dport . tcp ackseq . ether saddr }
  }
}
`;

const CLIENT_COUNTERS = `
table inet lab {
  counter synack {}
  counter rst {}
  chain in {
    type filter hook input priority filter; policy accept;
    ip saddr ${CLUSTER_LAB.vip} tcp flags & (syn | ack) == syn | ack counter name synack
    ip saddr ${CLUSTER_LAB.vip} tcp flags & rst == rst counter name rst
  }
}
`;
