import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import type { WitnessReport } from "./fencing.ts";

/**
 * Peer reports over UDP on the cluster segment: "I am NODE and I can (not) reach etcd". They are
 * the only thing nodes say to each other directly, and only matter while etcd is unreachable
 * (see fencing.ts). Unauthenticated: a forged "no etcd" could at worst keep a cut-off node
 * serving; a forged "etcd ok" only makes a node fence itself early.
 */
export const WITNESS_PORT = 9111;

interface Wire {
  nflb: "witness";
  cluster: string;
  node: string;
  etcd: boolean;
}

export class Witness {
  private sock: Socket | undefined;
  readonly reports = new Map<string, WitnessReport>();

  constructor(
    private readonly cluster: string,
    private readonly node: string,
    private readonly bind: { address: string; port: number },
    private readonly now: () => number = () => performance.now(),
  ) {}

  async start(): Promise<void> {
    const fam = isIP(this.bind.address);
    if (fam === 0) throw new Error(`witness: bad bind address ${this.bind.address}`);
    const sock = createSocket({ type: fam === 6 ? "udp6" : "udp4", reuseAddr: true });
    sock.on("message", (msg) => this.onMessage(msg));
    sock.on("error", () => undefined);
    await new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      sock.bind({ address: this.bind.address, port: this.bind.port }, () => resolve());
    });
    this.sock = sock;
  }

  private onMessage(msg: Buffer): void {
    if (msg.length > 512) return;
    let w: Partial<Wire>;
    try {
      w = JSON.parse(msg.toString("utf8")) as Partial<Wire>;
    } catch {
      return;
    }
    if (w.nflb !== "witness" || w.cluster !== this.cluster || typeof w.node !== "string") return;
    if (w.node === this.node || typeof w.etcd !== "boolean") return;
    this.reports.set(w.node, { node: w.node, etcd: w.etcd, receivedAt: this.now() });
  }

  /** Tell every peer whether this node can reach etcd. Best effort: UDP, no answer expected. */
  send(peers: readonly string[], etcd: boolean): void {
    const sock = this.sock;
    if (!sock) return;
    const wire: Wire = { nflb: "witness", cluster: this.cluster, node: this.node, etcd };
    const buf = Buffer.from(JSON.stringify(wire));
    for (const p of peers) if (isIP(p) !== 0) sock.send(buf, this.bind.port, p, () => undefined);
  }

  stop(): void {
    this.sock?.close();
    this.sock = undefined;
  }
}
