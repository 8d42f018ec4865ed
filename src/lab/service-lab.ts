// The services lab: clients → balancer (nflb's box, VIPs on lo) → backends.
//
//   client ──lan0┐          ┌srv0 ── up0┐ srv: br0 holds every backend address (one echo
//   (+ many       lb (VIPs) ┤           ├ server per backend, each bound to its own address)
//    sources)               │     near0─┘── near: a client on the backends' own subnet (hairpin)
//                           └far0 ── far: a backend with no route back to the clients (snat)
import { jsonLines } from "./processes.ts";
import { elementCounters } from "../system/service-counters.ts";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoPath } from "../paths.ts";
import type { ExecResult } from "../system/exec.ts";
import { NetnsLab } from "./lab.ts";
import { ipBatch } from "./netns.ts";
import type { TrackedProcess } from "./processes.ts";

export const SERVICE_LAB = {
  vip4: "203.0.113.10",
  vip6: "2001:db8:203::10",
  lan4: "198.18.0.1",
  lan6: "2001:db8:1::1",
  client4: "198.18.0.2",
  client6: "2001:db8:1::2",
  srv4: "198.51.100.1",
  srv6: "2001:db8:51::1",
  near4: "198.51.100.50",
  far4: "198.51.101.1",
  farBackend4: "198.51.101.11",
} as const;

export const MAX_BACKENDS = 30;
/** Extra client sources run from 198.18.1.0 upward inside the client's /22. */
export const MAX_CLIENT_SOURCES = 760;

/** `nflb run` in the balancer's namespace. */
export interface LabDaemon {
  proc: TrackedProcess;
  /** Where its state (overrides) lives; CLI calls get it too. */
  stateDir: string;
  /** Lines of its JSON log (the tail the lab keeps). */
  logs(): Record<string, unknown>[];
  stop(): Promise<void>;
}

const NFLB = repoPath("bin/nflb");

export interface ServiceLabOptions {
  backends: number;
  clientSources?: number;
}

export interface BackendListeners {
  tcp?: number[];
  udp?: number[];
}

/** Backend i (1-based): 198.51.100.(10+i) and 2001:db8:51::(10+i), answering as `b<i>`. */
export function backendAddress(i: number): { v4: string; v6: string } {
  if (!Number.isInteger(i) || i < 1 || i > MAX_BACKENDS)
    throw new Error(`backend index must be 1..${MAX_BACKENDS}`);
  return { v4: `198.51.100.${10 + i}`, v6: `2001:db8:51::${(10 + i).toString(16)}` };
}

export function clientSources(n: number): string[] {
  if (!Number.isInteger(n) || n < 0 || n > MAX_CLIENT_SOURCES)
    throw new Error(`clientSources must be 0..${MAX_CLIENT_SOURCES}`);
  return Array.from({ length: n }, (_, k) => `198.18.${1 + (k >> 8)}.${k & 255}`);
}

export class ServiceLab extends NetnsLab {
  readonly options: Required<ServiceLabOptions>;
  readonly sources: string[];
  private readonly backendProcs = new Map<number, TrackedProcess>();
  private tmp: string | undefined;
  private daemon: LabDaemon | undefined;

  constructor(opts: ServiceLabOptions) {
    super();
    if (!Number.isInteger(opts.backends) || opts.backends < 1 || opts.backends > MAX_BACKENDS)
      throw new Error(`backends must be 1..${MAX_BACKENDS}`);
    this.options = { backends: opts.backends, clientSources: opts.clientSources ?? 0 };
    this.sources = clientSources(this.options.clientSources);
  }

  async build(): Promise<this> {
    await this.runBuild(async () => {
      await Promise.all(["client", "lb", "srv", "near", "far"].map((r) => this.addRole(r)));
      this.check();
      const ns = (r: string) => this.netns(r);
      await ipBatch(undefined, [
        `link add name lan0 netns ${ns("lb")} type veth peer name eth0 netns ${ns("client")}`,
        `link add name srv0 netns ${ns("lb")} type veth peer name up0 netns ${ns("srv")}`,
        `link add name near0 netns ${ns("srv")} type veth peer name eth0 netns ${ns("near")}`,
        `link add name far0 netns ${ns("lb")} type veth peer name eth0 netns ${ns("far")}`,
      ]);
      this.check();
      const L = SERVICE_LAB;
      await Promise.all([
        ipBatch(ns("lb"), [
          `addr add ${L.vip4}/32 dev lo`,
          `addr add ${L.vip6}/128 dev lo nodad`,
          `addr add ${L.lan4}/22 dev lan0`,
          `addr add ${L.lan6}/64 dev lan0 nodad`,
          `addr add ${L.srv4}/24 dev srv0`,
          `addr add ${L.srv6}/64 dev srv0 nodad`,
          `addr add ${L.far4}/24 dev far0`,
          "link set lan0 up",
          "link set srv0 up",
          "link set far0 up",
        ]),
        ipBatch(ns("client"), [
          `addr add ${L.client4}/22 dev eth0`,
          ...this.sources.map((a) => `addr add ${a}/22 dev eth0`),
          `addr add ${L.client6}/64 dev eth0 nodad`,
          "link set eth0 up",
          `route add default via ${L.lan4}`,
          `route add ::/0 via ${L.lan6}`,
        ]),
        ipBatch(ns("srv"), [
          "link add name br0 type bridge",
          "link set up0 master br0 up",
          "link set near0 master br0 up",
          ...Array.from({ length: this.options.backends }, (_, k) => {
            const a = backendAddress(k + 1);
            return [`addr add ${a.v4}/24 dev br0`, `addr add ${a.v6}/64 dev br0 nodad`];
          }).flat(),
          "link set br0 up",
          `route add default via ${L.srv4}`,
          `route add ::/0 via ${L.srv6}`,
        ]),
        ipBatch(ns("near"), [
          `addr add ${L.near4}/24 dev eth0`,
          "link set eth0 up",
          `route add default via ${L.srv4}`,
        ]),
        // Deliberately no route back to the clients: only `snat: true` makes this backend usable.
        ipBatch(ns("far"), [`addr add ${L.farBackend4}/24 dev eth0`, "link set eth0 up"]),
      ]);
      await this.run("lb", ["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
      await this.settle();
    });
    return this;
  }

  /** Start backend i's echo server (`--hold`, so long-lived connections stay open). */
  async startBackend(i: number, l: BackendListeners = { tcp: [80] }): Promise<TrackedProcess> {
    if (this.backendProcs.has(i)) throw new Error(`backend ${i} already runs`);
    const a = backendAddress(i);
    const proc = await this.startEchoServer({
      role: "srv",
      name: `b${i}`,
      hold: true,
      tcp: (l.tcp ?? []).flatMap((port) => [
        { address: a.v4, port },
        { address: a.v6, port },
      ]),
      udp: (l.udp ?? []).map((port) => ({ address: a.v4, port })),
    });
    this.backendProcs.set(i, proc);
    return proc;
  }

  async stopBackend(i: number): Promise<void> {
    const p = this.backendProcs.get(i);
    this.backendProcs.delete(i);
    await p?.stop(1000);
  }

  /** Kill backend i's server outright (SIGKILL to its pid): no goodbye, as in a crash. */
  async killBackend(i: number): Promise<void> {
    const p = this.backendProcs.get(i);
    this.backendProcs.delete(i);
    if (!p) return;
    process.kill(p.pid, "SIGKILL");
    await p.exited;
  }

  async stopAllBackends(): Promise<void> {
    await Promise.all([...this.backendProcs.keys()].map((i) => this.stopBackend(i)));
  }

  /** One `nft -f` transaction in the balancer's namespace. */
  async nft(script: string): Promise<void> {
    await this.run("lb", ["nft", "-f", "-"], { input: script });
  }

  /**
   * Packets per backend in the balancer, from nflb's per-element counters, under the keys the
   * daemon uses (backendCounterKey): new connections (`@svc_conns4/6`), and `KEY_to`/`KEY_from`
   * the packets of its connections each way (`@svc_bytes_to/from4/6`).
   */
  async counters(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const [set, suffix] of [
      ["svc_conns", ""],
      ["svc_bytes_to", "_to"],
      ["svc_bytes_from", "_from"],
    ] as const)
      for (const f of [4, 6]) {
        const text = await this.run("lb", ["nft", "-j", "list", "set", "inet", "nflb", `${set}${f}`]).catch(
          () => "",
        );
        if (!text) continue;
        for (const it of (JSON.parse(text) as { nftables: Record<string, unknown>[] }).nftables)
          for (const [key, c] of elementCounters(it)) out.set(key + suffix, c.packets);
      }
    return out;
  }

  /** Interface names in the balancer, as `Facts` (hairpin needs them). */
  async lbInterfaces(): Promise<string[]> {
    const out = await this.run("lb", ["ip", "-j", "link", "show"]);
    return (JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname);
  }

  /** Write a config file for processes in the lab; removed by destroy(). */
  async writeConfig(name: string, text: string): Promise<string> {
    this.tmp ??= await mkdtemp(join(tmpdir(), "nflb-svc-lab-"));
    if (!/^[a-z0-9-]+\.yaml$/.test(name)) throw new Error(`bad config file name ${name}`);
    const file = join(this.tmp, name);
    await writeFile(file, text);
    return file;
  }

  /**
   * `nflb run -c FILE` in the balancer's namespace (the API on 127.0.0.1:9110 there), with a state
   * directory of its own; resolves once it runs. One daemon at a time: stop it before the next.
   */
  async startDaemon(configFile: string): Promise<LabDaemon> {
    if (this.daemon) throw new Error("a daemon already runs in this lab");
    this.tmp ??= await mkdtemp(join(tmpdir(), "nflb-svc-lab-"));
    const stateDir = await mkdtemp(join(this.tmp, "state-"));
    // `env` execs nflb in place: the pid stays the daemon's own, for signals.
    const proc = this.spawn("lb", ["env", `NFLB_STATE_DIR=${stateDir}`, NFLB, "run", "-c", configFile]);
    try {
      await proc.waitForLine(/"msg":"nflb running"/, 30_000);
    } catch (e) {
      await proc.stop(5000);
      throw new Error(`nflb run did not start: ${(e as Error).message}\n${proc.stderr().slice(-2000)}`);
    }
    const d: LabDaemon = {
      proc,
      stateDir,
      logs: () => jsonLines(proc.stdout()),
      stop: async () => {
        if (this.daemon === d) this.daemon = undefined;
        await proc.stop(5000);
      },
    };
    this.daemon = d;
    return d;
  }

  /** `bin/nflb ARGS` in the balancer's namespace, beside the running daemon. */
  nflb(args: readonly string[], timeoutMs = 30_000): Promise<ExecResult> {
    const env = { ...process.env, ...(this.daemon ? { NFLB_STATE_DIR: this.daemon.stateDir } : {}) };
    return this.exec("lb", [NFLB, ...args], { timeoutMs, env });
  }

  /** COUNT long-lived TCP connections opened one after another from one process (cheaper than a holder each). */
  startConnections(
    role: string,
    o: { dst: string; port: number; count: number; durationMs?: number },
  ): ConnectionGroup {
    if (!Number.isInteger(o.count) || o.count < 1 || o.count > 1000) throw new Error("count must be 1..1000");
    const argv = [
      process.execPath,
      "--input-type=module",
      "-e",
      HOLD_MANY,
      o.dst,
      String(o.port),
      String(o.count),
      String(o.durationMs ?? 60_000),
    ];
    return new ConnectionGroup(this.spawn(role, argv));
  }

  override async destroy(): Promise<void> {
    await this.daemon?.stop();
    await super.destroy();
    if (this.tmp) await rm(this.tmp, { recursive: true, force: true });
  }
}

/** JSON-line events of a spawned process, collected as they come (the tracked output is capped). */
class JsonLines<T> {
  readonly events: T[] = [];
  constructor(readonly process: TrackedProcess) {
    let buf = "";
    process.child.stdout?.on("data", (d: string | Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          this.events.push(JSON.parse(line) as T);
        } catch {
          // not an event line
        }
      }
    });
  }

  /** The first event at or after index `from` that satisfies `pred`. */
  async waitFor(pred: (e: T) => boolean, timeoutMs: number, from = 0): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.slice(from).find(pred);
      if (hit) return hit;
      if (Date.now() > deadline)
        throw new Error(
          `no matching event within ${timeoutMs} ms; last: ${JSON.stringify(this.events.slice(-3))}; stderr: ${this.process.stderr().slice(-1000)}`,
        );
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  stop(): Promise<void> {
    return this.process.stop(2000);
  }
}

export type GroupLine =
  { type: "connected"; i: number; greeting: string } | { type: "done" | "closed"; open: number };

export class ConnectionGroup extends JsonLines<GroupLine> {
  /** Wait until every connection is open; returns their greetings (`b<i> <peer>`), in order. */
  async opened(timeoutMs = 20_000): Promise<string[]> {
    await this.waitFor((e) => e.type === "done", timeoutMs);
    return this.events.flatMap((e) => (e.type === "connected" ? [e.greeting] : []));
  }

  /** Connections still open (a `closed` line is printed whenever one closes). */
  get open(): number {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i];
      if (e && e.type !== "connected") return e.open;
    }
    return this.events.length;
  }
}

// Plain JS (no tsx start-up): open COUNT connections in sequence, each after the previous
// greeted; keep them open until DURATION or SIGTERM. Bounded: every connect has a 3 s limit.
const HOLD_MANY = `
import { connect } from "node:net";
const [host, port, count, duration] = process.argv.slice(1);
const socks = [];
let open = 0;
const out = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
const end = () => { for (const s of socks) s.destroy(); process.exit(0); };
process.on("SIGTERM", end);
setTimeout(end, Number(duration)).unref();
for (let i = 0; i < Number(count); i++) {
  const greeting = await new Promise((resolve, reject) => {
    const s = connect({ host, port: Number(port) });
    const timer = setTimeout(() => { s.destroy(); reject(new Error("connect " + i + ": timeout")); }, 3000);
    let buf = "";
    s.setEncoding("utf8");
    s.on("data", (d) => {
      buf += d;
      const nl = buf.indexOf("\\n");
      if (nl >= 0 && !s.greeted) { s.greeted = true; clearTimeout(timer); resolve(buf.slice(0, nl)); }
    });
    s.on("error", (e) => { clearTimeout(timer); reject(e); });
    s.on("close", () => { if (s.greeted) { open--; out({ type: "closed", open }); } });
    socks.push(s);
  }).catch((e) => { process.stderr.write(String(e) + "\\n"); process.exit(1); });
  open++;
  out({ type: "connected", i, greeting });
}
out({ type: "done", open });
setInterval(() => {}, 1 << 30);
`;
