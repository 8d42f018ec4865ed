// The cluster lab: N nodes sharing one VIP on one L2 segment, an etcd, and a client behind a router.
//
//   client (60 sources) ── router ──┐
//                                   sw: bridge br0 (a plain switch)
//              etcd ─────────────────┤
//              node1 … nodeN ────────┘   each: VIP 192.0.2.2, agent, echo-server on :7000
//
// The router reaches the VIP through a static ARP entry for the cluster's multicast MAC (what an
// upstream router needs; see docs/CLUSTER.md). Every lab has a witness key and a push key pair;
// with `tls`, etcd takes only clients with a certificate of the lab's own CA, and a user/password.
import { createPrivateKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { clusterMac } from "../cluster/render.ts";
import { signConfig } from "../cluster/signing.ts";
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
  etcdTlsUrl: "https://192.0.2.250:2379",
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
  /** etcd over https with client certificates (its own CA, made with openssl) and user/password auth. */
  tls?: boolean;
}

/** The agent's snapshot, as the daemon logs it (`msg: "cluster state"`) and serves it in status. */
export interface AgentSnapshotLine {
  node: string;
  buckets_owned: number;
  owned: number[];
  config_version: number | null;
  mode: string;
  etcd: boolean;
  error?: string | null;
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
  private pushPrivatePem = "";
  /** etcd's root password (tls labs), for etcdctl. */
  private readonly rootPassword = randomBytes(12).toString("hex");
  /** nflb's etcd password: in a file only, so a test can check it never shows. */
  readonly etcdPassword = randomBytes(12).toString("hex");
  private authEnabled = false;

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
      tls: opts.tls ?? false,
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

  /** The private key `nflb cluster push --signing-key` takes (members hold its public key). */
  get pushKeyPath(): string {
    return `${this.dir}/push.key`;
  }

  get etcdUrl(): string {
    return this.options.tls ? CLUSTER_LAB.etcdTlsUrl : CLUSTER_LAB.etcdUrl;
  }

  /** A node's config text; `extra` is appended verbatim (top-level keys). */
  configText(i: number, extra = "", over: { buckets?: number } = {}): string {
    const o = this.options;
    const d = this.dir;
    return [
      "version: 1",
      "cluster:",
      "  name: lab",
      `  node: node${i}`,
      `  vip: ${CLUSTER_LAB.vip}`,
      "  interface: eth0",
      `  buckets: ${over.buckets ?? o.buckets}`,
      `  etcd: [${this.etcdUrl}]`,
      `  lease: ${o.lease}`,
      `  key_file: ${d}/cluster.key`,
      `  push_public_key: ${d}/push.pub`,
      ...(o.tls
        ? [
            `  etcd_tls: { ca: ${d}/pki/ca.crt, cert: ${d}/pki/client.crt, key: ${d}/pki/client.key }`,
            `  etcd_auth: { username: nflb, password_file: ${d}/etcd.password }`,
          ]
        : []),
      extra,
    ].join("\n");
  }

  /** A shared-config record as `nflb cluster push` writes it, signed with the lab's push key. */
  signedRecord(version: number, text: string): string {
    return JSON.stringify({
      version,
      sha256: "",
      text,
      pushed_at: new Date().toISOString(),
      signature: signConfig(createPrivateKeyPem(this.pushPrivatePem), "lab", version, text),
    });
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
      await this.writeKeys();
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

  /** The witness key and the push key pair every lab node uses (files only root can read). */
  private async writeKeys(): Promise<void> {
    const d = this.dir;
    await writeFile(`${d}/cluster.key`, randomBytes(32).toString("hex") + "\n", { mode: 0o600 });
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    this.pushPrivatePem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    await writeFile(`${d}/push.key`, this.pushPrivatePem, { mode: 0o600 });
    await writeFile(`${d}/push.pub`, publicKey.export({ type: "spki", format: "pem" }), { mode: 0o644 });
    if (!this.options.tls) return;
    await writeFile(`${d}/etcd.password`, this.etcdPassword + "\n", { mode: 0o600 });
    await this.makePki();
  }

  /**
   * A CA, etcd's server certificate (for its lab address) and one client certificate, with the
   * openssl CLI. etcd's gateway dials etcd's own gRPC port with the server certificate, so that one
   * is also a client certificate. The client certificate has no CN: etcd 3.4's gateway refuses a request whose
   * certificate carries one while auth is on (it would not use it), so users come from tokens.
   */
  private async makePki(): Promise<void> {
    const pki = `${this.dir}/pki`;
    const ssl = (args: string[]) => this.run("etcd", ["openssl", ...args]);
    await this.run("etcd", ["mkdir", "-m", "700", pki]);
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await ssl([
      "req",
      "-x509",
      ...ec,
      "-keyout",
      `${pki}/ca.key`,
      "-out",
      `${pki}/ca.crt`,
      "-days",
      "2",
      "-subj",
      "/CN=nflb-lab-ca",
    ]);
    const issue = async (name: string, subj: string, ext: string) => {
      await writeFile(`${pki}/${name}.ext`, ext);
      await ssl(["req", ...ec, "-keyout", `${pki}/${name}.key`, "-out", `${pki}/${name}.csr`, "-subj", subj]);
      await ssl([
        "x509",
        "-req",
        "-in",
        `${pki}/${name}.csr`,
        "-CA",
        `${pki}/ca.crt`,
        "-CAkey",
        `${pki}/ca.key`,
        "-CAcreateserial",
        "-out",
        `${pki}/${name}.crt`,
        "-days",
        "2",
        "-extfile",
        `${pki}/${name}.ext`,
      ]);
    };
    await issue(
      "server",
      "/CN=etcd",
      `subjectAltName=IP:${CLUSTER_LAB.etcd}\nextendedKeyUsage=serverAuth,clientAuth\n`,
    );
    await issue("client", "/O=nflb-lab", "extendedKeyUsage=clientAuth\n");
    await this.run("etcd", ["chmod", "600", `${pki}/ca.key`, `${pki}/server.key`, `${pki}/client.key`]);
  }

  /** etcdctl's flags: the endpoint, and with tls the client certificate and the root user. */
  private etcdctlArgv(auth = true): string[] {
    const pki = `${this.dir}/pki`;
    return [
      "etcdctl",
      `--endpoints=${this.etcdUrl}`,
      ...(this.options.tls
        ? [`--cacert=${pki}/ca.crt`, `--cert=${pki}/client.crt`, `--key=${pki}/client.key`]
        : []),
      ...(auth && this.authEnabled ? [`--user=root:${this.rootPassword}`] : []),
    ];
  }

  async startEtcd(): Promise<void> {
    if (this.etcdProc) return;
    const tls = this.options.tls;
    const client = `${tls ? "https" : "http"}://${CLUSTER_LAB.etcd}:2379`;
    const peer = `http://${CLUSTER_LAB.etcd}:2380`;
    const pki = `${this.dir}/pki`;
    this.etcdProc = this.spawn("etcd", [
      "etcd",
      "--name=lab",
      `--data-dir=${this.dir}/etcd`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=lab=${peer}`,
      ...(tls
        ? [
            "--client-cert-auth",
            `--trusted-ca-file=${pki}/ca.crt`,
            `--cert-file=${pki}/server.crt`,
            `--key-file=${pki}/server.key`,
          ]
        : []),
      "--log-level=warn",
    ]);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const r = await this.exec("etcd", [...this.etcdctlArgv(), "endpoint", "health"], { timeoutMs: 5000 });
      if (r.code === 0) {
        if (tls && !this.authEnabled) await this.enableAuth();
        return;
      }
      await new Promise((res) => setTimeout(res, 200));
    }
    throw new Error(`etcd did not become healthy: ${this.etcdProc.stderr().slice(-1000)}`);
  }

  /** etcd's auth: root, and a user `nflb` that may read and write /nflb/ only. */
  private async enableAuth(): Promise<void> {
    const ctl = (args: string[]) => this.run("etcd", [...this.etcdctlArgv(false), ...args]);
    await ctl(["user", "add", "root", `--new-user-password=${this.rootPassword}`]);
    await ctl(["user", "grant-role", "root", "root"]);
    await ctl(["role", "add", "nflb"]);
    await ctl(["role", "grant-permission", "nflb", "--prefix=true", "readwrite", "/nflb/"]);
    await ctl(["user", "add", "nflb", `--new-user-password=${this.etcdPassword}`]);
    await ctl(["user", "grant-role", "nflb", "nflb"]);
    await ctl(["auth", "enable"]);
    this.authEnabled = true;
  }

  /** Stop etcd (SIGTERM, by pid); its data directory stays for startEtcd(). */
  async stopEtcd(): Promise<void> {
    await this.etcdProc?.stop(3000);
    this.etcdProc = undefined;
  }

  /** Fault injection: SIGSTOP etcd (it hangs: connections stay open, nothing is answered). */
  pauseEtcd(): void {
    this.etcdProc?.child.kill("SIGSTOP");
  }

  resumeEtcd(): void {
    this.etcdProc?.child.kill("SIGCONT");
  }

  /** Fault injection: SIGKILL etcd (it dies at once; startEtcd() brings it back on its data). */
  async killEtcd(): Promise<void> {
    const p = this.etcdProc;
    if (!p) return;
    p.child.kill("SIGKILL");
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([p.exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    this.etcdProc = undefined;
  }

  etcdctl(args: readonly string[]): Promise<string> {
    return this.run("etcd", [...this.etcdctlArgv(), ...args]);
  }

  /** etcdctl with the lab's TLS client certificate but no user (tls labs: auth must refuse it). */
  etcdctlAnonymous(args: readonly string[]) {
    return this.exec("etcd", [...this.etcdctlArgv(false), ...args], { timeoutMs: 10_000 });
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

  /** Why node i refused each shared config version it refused. */
  refusalReasons(i: number): Map<number, string> {
    const out = new Map<number, string>();
    for (const l of this.logLines(i, "cluster: pushed config refused"))
      if (typeof l["version"] === "number") out.set(l["version"], String(l["reason"]));
    return out;
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
  async clientCounters(reset = false): Promise<{ synack: number; rst: number; rstLate: number }> {
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
    return { synack: get("synack"), rst: get("rst"), rstLate: get("rst_late") };
  }
}

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

/**
 * The client's view. `rst` counts resets that reached a connection still open at the client (a full
 * socket: something cut it); tests require none. `rst_late` counts those that found only a
 * TIME_WAIT socket or none: they answer a stray segment after both sides had closed, and TCP sends
 * them with or without a cluster. Captured (AF_PACKET on the client, router and node): the server
 * ACKs the client's FIN in one segment and sends its own FIN in the next; the veths reorder the two
 * now and then (each is queued on the CPU that sent it), so the client, already in TIME_WAIT, gets
 * the stale ACK after the FIN and re-ACKs it; the server's socket closed on the first ACK, so its
 * listener answers the duplicate with a plain RST while conntrack (TIME_WAIT, which `ct state
 * established` matches) lets it through. About one connection in 150 under load; none of them
 * loses a byte. `socket wildcard` does not match (breaks) for anything but a full socket.
 */
const CLIENT_COUNTERS = `
table inet lab {
  counter synack {}
  counter rst {}
  counter rst_late {}
  chain in {
    type filter hook input priority filter; policy accept;
    ip saddr ${CLUSTER_LAB.vip} tcp flags & (syn | ack) == syn | ack counter name synack
    ip saddr ${CLUSTER_LAB.vip} tcp flags & rst == rst socket wildcard 0 counter name rst accept
    ip saddr ${CLUSTER_LAB.vip} tcp flags & rst == rst counter name rst_late
  }
}
`;

function createPrivateKeyPem(pem: string) {
  if (!pem) throw new Error("cluster lab: not built");
  return createPrivateKey(pem);
}
