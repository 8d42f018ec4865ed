import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import type { WitnessReport } from "./fencing.ts";

/**
 * Peer reports over UDP on the cluster segment: "I am NODE and I can (not) reach etcd". They are
 * the only thing nodes say to each other directly, and only matter while etcd is unreachable
 * (see fencing.ts). A forged "no etcd" could keep a cut-off node serving, so every report is
 * authenticated: HMAC-SHA256 with a key derived from `cluster.key_file`, a timestamp inside a
 * short window, a sender timestamp that only moves forward (no replay), and the source address
 * must be the one the member registered in etcd.
 */
export const WITNESS_PORT = 9111;

const MAX_DATAGRAM = 512;

interface Wire {
  nflb: "witness";
  v: 2;
  cluster: string;
  node: string;
  etcd: boolean;
  /** Sender's wall clock, ms. */
  ts: number;
  nonce: string;
  mac: string;
}

export type WitnessRejection =
  "malformed" | "other cluster" | "bad mac" | "unknown sender" | "stale" | "replay";

export interface WitnessAuth {
  /** The shared secret (cluster.key_file); the report key is derived from it and the cluster name. */
  key: Buffer;
  /** The address a member registered in etcd; reports from anywhere else are ignored. */
  addressOf: (node: string) => string | undefined;
  /** How old (or how far ahead, clocks differ) a report's timestamp may be. */
  windowMs: number;
  wallNow?: () => number;
  onReject?: (why: WitnessRejection, node: string | null) => void;
}

export function witnessKey(key: Buffer, cluster: string): Buffer {
  return createHmac("sha256", key).update(`nflb-witness/1\n${cluster}`).digest();
}

function macOf(k: Buffer, w: Omit<Wire, "mac" | "nflb" | "v">): string {
  return createHmac("sha256", k)
    .update(JSON.stringify([w.cluster, w.node, w.etcd, w.ts, w.nonce]))
    .digest("base64");
}

/** One signed report (exported for tests). */
export function encodeReport(k: Buffer, cluster: string, node: string, etcd: boolean, ts: number): Buffer {
  const body = { cluster, node, etcd, ts, nonce: randomBytes(8).toString("hex") };
  const wire: Wire = { nflb: "witness", v: 2, ...body, mac: macOf(k, body) };
  return Buffer.from(JSON.stringify(wire));
}

const plainAddress = (a: string) => (a.startsWith("::ffff:") && isIP(a.slice(7)) === 4 ? a.slice(7) : a);

export class Witness {
  private sock: Socket | undefined;
  readonly reports = new Map<string, WitnessReport>();
  private readonly key: Buffer;
  private readonly lastTs = new Map<string, number>();
  private readonly wallNow: () => number;

  constructor(
    private readonly cluster: string,
    private readonly node: string,
    private readonly bind: { address: string; port: number },
    private readonly auth: WitnessAuth,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.key = witnessKey(auth.key, cluster);
    this.wallNow = auth.wallNow ?? Date.now;
  }

  async start(): Promise<void> {
    const fam = isIP(this.bind.address);
    if (fam === 0) throw new Error(`witness: bad bind address ${this.bind.address}`);
    const sock = createSocket({ type: fam === 6 ? "udp6" : "udp4", reuseAddr: true });
    sock.on("message", (msg, rinfo) => this.receive(msg, rinfo.address));
    sock.on("error", () => undefined);
    await new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      sock.bind({ address: this.bind.address, port: this.bind.port }, () => resolve());
    });
    this.sock = sock;
  }

  /** Take one datagram from `from`; true when it was accepted as a report. */
  receive(msg: Buffer, from: string): boolean {
    const reject = (why: WitnessRejection, node: string | null = null) => {
      this.auth.onReject?.(why, node);
      return false;
    };
    if (msg.length > MAX_DATAGRAM) return reject("malformed");
    let w: Partial<Wire>;
    try {
      w = JSON.parse(msg.toString("utf8")) as Partial<Wire>;
    } catch {
      return reject("malformed");
    }
    if (w === null || typeof w !== "object" || w.nflb !== "witness" || w.v !== 2) return reject("malformed");
    if (w.cluster !== this.cluster) return reject("other cluster");
    const { node, etcd, ts, nonce, mac } = w;
    if (typeof node !== "string" || node.length > 64 || node === this.node) return reject("malformed");
    if (typeof etcd !== "boolean" || typeof ts !== "number" || !Number.isSafeInteger(ts))
      return reject("malformed", node);
    if (typeof nonce !== "string" || nonce.length > 64 || typeof mac !== "string")
      return reject("malformed", node);
    const want = Buffer.from(macOf(this.key, { cluster: this.cluster, node, etcd, ts, nonce }), "base64");
    const got = Buffer.from(mac, "base64");
    if (got.length !== want.length || !timingSafeEqual(got, want)) return reject("bad mac", node);
    const known = this.auth.addressOf(node);
    if (known === undefined || plainAddress(known) !== plainAddress(from))
      return reject("unknown sender", node);
    if (Math.abs(this.wallNow() - ts) > this.auth.windowMs) return reject("stale", node);
    if (ts <= (this.lastTs.get(node) ?? -Infinity)) return reject("replay", node);
    this.lastTs.set(node, ts);
    this.reports.set(node, { node, etcd, receivedAt: this.now() });
    return true;
  }

  /** Tell every peer whether this node can reach etcd. Best effort: UDP, no answer expected. */
  send(peers: readonly string[], etcd: boolean): void {
    const sock = this.sock;
    if (!sock) return;
    const buf = encodeReport(this.key, this.cluster, this.node, etcd, this.wallNow());
    for (const p of peers) if (isIP(p) !== 0) sock.send(buf, this.bind.port, p, () => undefined);
  }

  stop(): void {
    this.sock?.close();
    this.sock = undefined;
  }
}
