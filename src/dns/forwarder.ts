import dgram from "node:dgram";
import net from "node:net";
import { randomInt } from "node:crypto";
import * as dnsPacket from "dns-packet";
import type { Packet } from "dns-packet";
import { formatHostPort } from "../net/ip.ts";

/** A query bigger than this is not a query a stub resolver sends (EDNS buffers are 1232..4096). */
export const MAX_QUERY = 4096;
/** The longest DNS message (TCP's 2-byte length). */
export const MAX_MESSAGE = 65_535;
/** An answer is held at most this long for its set write; then it goes out regardless. */
export const MAX_HOLD_MS = 1000;
/** A TCP client idle this long is disconnected. */
const TCP_IDLE_MS = 10_000;

export type DropReason =
  | "malformed"
  | "oversized"
  | "not-a-query"
  | "pending-full"
  | "tcp-full"
  | "timeout"
  | "malformed-answer"
  | "unexpected-answer"
  | "upstream-error";

export interface Endpoint {
  addr: string;
  family: 4 | 6;
  port: number;
}

export interface ForwarderEvents {
  query(transport: "udp" | "tcp"): void;
  answer(transport: "udp" | "tcp", holdSeconds: number): void;
  dropped(reason: DropReason): void;
  /**
   * A decoded answer from an upstream, before it goes to the client: a promise delays the answer
   * until it settles (at most MAX_HOLD_MS), so the rule's set has the address when the client
   * connects. Must not throw.
   */
  answered(answer: Packet): Promise<void> | null;
}

export interface ForwarderOptions {
  listen: Endpoint[];
  upstream: Endpoint[];
  timeoutMs: number;
  maxPending: number;
  maxTcp: number;
  events: ForwarderEvents;
  onError?: (where: string, err: Error) => void;
}

interface Pending {
  reply: (msg: Buffer) => void;
  id: number;
  key: string;
  upstream: number;
  timer: NodeJS.Timeout;
}

/** `name type class` of a message's one question, case-folded: what an answer must repeat. */
function questionKey(p: Packet): string | null {
  const qs = p.questions ?? [];
  if (qs.length !== 1 || !qs[0]) return null;
  return `${qs[0].name.toLowerCase()} ${qs[0].type} ${qs[0].class ?? "IN"}`;
}

function decode(msg: Buffer): Packet | null {
  try {
    return dnsPacket.decode(msg);
  } catch {
    return null;
  }
}

/**
 * A DNS forwarder: every query goes unchanged (but for its id) to an upstream, every answer comes
 * back unchanged (its id restored). UDP queries share one socket per family towards the upstreams,
 * with ids of their own (a bounded table of pending queries); TCP queries get a TCP connection to
 * the upstream each. What arrives is bounded and decoded before use: anything malformed, oversized
 * or unexpected is dropped and counted, never thrown.
 */
export class Forwarder {
  private readonly udp: dgram.Socket[] = [];
  private readonly tcp: net.Server[] = [];
  private readonly out = new Map<4 | 6, dgram.Socket>();
  private readonly pending = new Map<number, Pending>();
  private readonly tcpClients = new Set<net.Socket>();
  private current = 0;
  private closed = false;

  constructor(private readonly o: ForwarderOptions) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Bind every listen address (UDP and TCP); throws when one cannot be bound, leaving none bound. */
  async start(): Promise<void> {
    try {
      for (const l of this.o.listen) {
        const s = dgram.createSocket({ type: l.family === 4 ? "udp4" : "udp6", recvBufferSize: 1 << 20 });
        s.on("message", (msg, rinfo) =>
          this.onQuery(msg, (m) => s.send(m, rinfo.port, rinfo.address, this.sent)),
        );
        s.on("error", (e) =>
          this.o.onError?.(`udp ${formatHostPort({ family: l.family, text: l.addr }, l.port)}`, e),
        );
        this.udp.push(s);
        await new Promise<void>((resolve, reject) => {
          s.once("error", reject);
          s.bind(l.port, l.addr, () => {
            s.off("error", reject);
            resolve();
          });
        });
        const t = net.createServer((c) => this.onTcpClient(c));
        t.maxConnections = this.o.maxTcp;
        t.on("drop", () => this.o.events.dropped("tcp-full"));
        this.tcp.push(t);
        await new Promise<void>((resolve, reject) => {
          t.once("error", reject);
          t.listen({ port: l.port, host: l.addr }, () => {
            t.off("error", reject);
            resolve();
          });
        });
      }
    } catch (e) {
      this.stop();
      throw e;
    }
  }

  stop(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.udp) s.close();
    for (const s of this.out.values()) s.close();
    for (const t of this.tcp) t.close();
    for (const c of this.tcpClients) c.destroy();
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }

  private readonly sent = (err: Error | null) => {
    if (err) this.o.onError?.("send", err);
  };

  /** A query from a client: validated, then sent to the current upstream under an id of ours. */
  private onQuery(msg: Buffer, reply: (m: Buffer) => void): void {
    const { events } = this.o;
    if (this.closed) return;
    if (msg.length > MAX_QUERY) return events.dropped("oversized");
    const p = msg.length >= 12 ? decode(msg) : null;
    if (!p) return events.dropped("malformed");
    const key = questionKey(p);
    if (p.type !== "query" || !key) return events.dropped("not-a-query");
    if (this.pending.size >= this.o.maxPending) return events.dropped("pending-full");
    let id = -1;
    for (let i = 0; i < 16 && id < 0; i++) {
      const c = randomInt(0, 65_536);
      if (!this.pending.has(c)) id = c;
    }
    if (id < 0) return events.dropped("pending-full");
    events.query("udp");
    const upstream = this.current;
    const up = this.o.upstream[upstream] as Endpoint;
    const timer = setTimeout(() => {
      this.pending.delete(id);
      events.dropped("timeout");
      // The upstream did not answer: the next queries try the next one.
      if (this.current === upstream) this.current = (upstream + 1) % this.o.upstream.length;
    }, this.o.timeoutMs);
    timer.unref();
    this.pending.set(id, { reply, id: msg.readUInt16BE(0), key, upstream, timer });
    const fwd = Buffer.from(msg);
    fwd.writeUInt16BE(id, 0);
    this.outSocket(up.family).send(fwd, up.port, up.addr, (err) => {
      if (!err) return;
      const q = this.pending.get(id);
      if (q) clearTimeout(q.timer);
      this.pending.delete(id);
      events.dropped("upstream-error");
    });
  }

  private outSocket(fam: 4 | 6): dgram.Socket {
    let s = this.out.get(fam);
    if (s) return s;
    s = dgram.createSocket({ type: fam === 4 ? "udp4" : "udp6", recvBufferSize: 1 << 20 });
    s.on("message", (msg, rinfo) => this.onUpstreamAnswer(msg, rinfo));
    s.on("error", (e) => this.o.onError?.(`upstream socket (IPv${fam})`, e));
    this.out.set(fam, s);
    return s;
  }

  /** An answer on the upstream socket: it must come from the upstream asked and repeat the question. */
  private onUpstreamAnswer(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const { events } = this.o;
    if (msg.length < 12) return events.dropped("malformed-answer");
    const q = this.pending.get(msg.readUInt16BE(0));
    const up = q && this.o.upstream[q.upstream];
    if (!q || !up || rinfo.port !== up.port || normal(rinfo.address) !== up.addr)
      return events.dropped("unexpected-answer");
    const p = decode(msg);
    // A forged or broken message leaves the query pending: the real answer may still come.
    if (!p) return events.dropped("malformed-answer");
    if (p.type !== "response" || questionKey(p) !== q.key) return events.dropped("unexpected-answer");
    clearTimeout(q.timer);
    this.pending.delete(msg.readUInt16BE(0));
    const back = Buffer.from(msg);
    back.writeUInt16BE(q.id, 0);
    this.deliver(p, "udp", () => q.reply(back));
  }

  /** Hand the answer to the client, after the set write it caused (bounded wait). */
  private deliver(p: Packet, transport: "udp" | "tcp", send: () => void): void {
    const t0 = performance.now();
    const done = () => {
      if (this.closed) return;
      send();
      this.o.events.answer(transport, (performance.now() - t0) / 1000);
    };
    const hold = this.o.events.answered(p);
    if (!hold) return done();
    let sent = false;
    const once = () => {
      if (sent) return;
      sent = true;
      clearTimeout(cap);
      done();
    };
    const cap = setTimeout(once, MAX_HOLD_MS);
    cap.unref();
    hold.then(once, once);
  }

  /** A TCP client: length-prefixed queries, answered one at a time, each over a TCP connection of its own. */
  private onTcpClient(c: net.Socket): void {
    this.tcpClients.add(c);
    c.setTimeout(TCP_IDLE_MS, () => c.destroy());
    c.on("close", () => this.tcpClients.delete(c));
    c.on("error", () => c.destroy());
    let buf = Buffer.alloc(0);
    let busy = false;
    const next = () => {
      if (busy || buf.length < 2) return;
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) return;
      const msg = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      busy = true;
      this.onTcpQuery(msg, (answer) => {
        if (answer && !c.destroyed) {
          const len2 = Buffer.alloc(2);
          len2.writeUInt16BE(answer.length, 0);
          c.write(Buffer.concat([len2, answer]));
        }
        busy = false;
        if (!answer) c.destroy();
        else next();
      });
    };
    c.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      // One message and the next one's length at most: a client that sends more waits for answers.
      if (buf.length > 2 + MAX_MESSAGE + 2) {
        this.o.events.dropped("oversized");
        return c.destroy();
      }
      next();
    });
  }

  private onTcpQuery(msg: Buffer, done: (answer: Buffer | null) => void): void {
    const { events } = this.o;
    if (msg.length > MAX_QUERY) {
      events.dropped("oversized");
      return done(null);
    }
    const p = msg.length >= 12 ? decode(msg) : null;
    const key = p && questionKey(p);
    if (!p || !key || p.type !== "query") {
      events.dropped(p ? "not-a-query" : "malformed");
      return done(null);
    }
    events.query("tcp");
    const up = this.o.upstream[this.current] as Endpoint;
    const s = net.connect({ host: up.addr, port: up.port });
    let buf = Buffer.alloc(0);
    let finished = false;
    const finish = (answer: Buffer | null, reason?: DropReason) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      s.destroy();
      if (reason) events.dropped(reason);
      if (!answer) return done(null);
      const a = decode(answer);
      if (!a || a.type !== "response" || questionKey(a) !== key || a.id !== p.id) {
        events.dropped(a ? "unexpected-answer" : "malformed-answer");
        return done(null);
      }
      this.deliver(a, "tcp", () => done(answer));
    };
    const timer = setTimeout(() => finish(null, "timeout"), this.o.timeoutMs);
    timer.unref();
    s.on("error", () => finish(null, "upstream-error"));
    s.on("connect", () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length, 0);
      s.write(Buffer.concat([len, msg]));
    });
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0))
        finish(Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0))));
      else if (buf.length > 2 + MAX_MESSAGE) finish(null, "oversized");
    });
    s.on("end", () => finish(null, "upstream-error"));
  }
}

/** `::ffff:192.0.2.1` from a dual-stack socket, and IPv6 in canonical form, for comparison. */
function normal(a: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m?.[1] ?? a.toLowerCase();
}
