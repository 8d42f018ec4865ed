// Lab DNS client: resolves names through a server, or sends it malformed messages.
//
//   dns-client.ts --server ADDR[:PORT] --name NAME [--name NAME…] [--type A|AAAA] [--tcp] [--timeout-ms 2000]
//     one query per name, in order; prints {"name","rcode","addresses","ttls","ms"} per name
//     ("rcode":"TIMEOUT" when none came)
//   dns-client.ts --server ADDR[:PORT] --junk COUNT
//     COUNT malformed UDP messages (short, truncated names, pointer loops, oversized, answers
//     posing as queries, garbage), each after the previous one left; prints {"sent":COUNT}
import { createSocket } from "node:dgram";
import { connect, isIP } from "node:net";
import { parseArgs } from "node:util";
import * as dnsPacket from "dns-packet";
import { boundedInt } from "./endpoint.ts";

const { values } = parseArgs({
  options: {
    server: { type: "string" },
    name: { type: "string", multiple: true },
    type: { type: "string" },
    tcp: { type: "boolean", default: false },
    "timeout-ms": { type: "string" },
    junk: { type: "string" },
  },
  strict: true,
});

const m = /^(.+?)(?::(\d+))?$/.exec(values.server ?? "");
const host = m?.[1] ?? "";
if (isIP(host) !== 4) throw new Error("--server must be an IPv4 address, optionally with :PORT");
const port = boundedInt(m?.[2], "port", 53, 1, 65535);
const timeoutMs = boundedInt(values["timeout-ms"], "timeout-ms", 2000, 1, 60_000);
const type = values.type === "AAAA" ? "AAAA" : "A";

function query(name: string): Buffer {
  return dnsPacket.encode({
    type: "query",
    id: Math.floor(Math.random() * 65536),
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: "IN" }],
  });
}

function viaUdp(msg: Buffer): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = createSocket("udp4");
    const timer = setTimeout(() => done(null), timeoutMs);
    const done = (b: Buffer | null) => {
      clearTimeout(timer);
      s.close();
      resolve(b);
    };
    s.on("message", (b) => done(b));
    s.on("error", () => done(null));
    s.send(msg, port, host);
  });
}

function viaTcp(msg: Buffer): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(null), timeoutMs);
    const done = (b: Buffer | null) => {
      clearTimeout(timer);
      s.destroy();
      resolve(b);
    };
    s.on("connect", () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length);
      s.write(Buffer.concat([len, msg]));
    });
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0))
        done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
    s.on("error", () => done(null));
    s.on("close", () => done(null));
  });
}

/** Deterministic malformed messages, none of which is a valid query. */
function junk(i: number): Buffer {
  const id = Buffer.from([i & 0xff, (i >> 8) & 0xff]);
  switch (i % 6) {
    case 0: // shorter than a header
      return Buffer.from([1, 2, 3, 4, 5]);
    case 1: // one question whose name runs past the end
      return Buffer.concat([id, Buffer.from([1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 40, 0x61, 0x62])]);
    case 2: // a compression pointer to itself
      return Buffer.concat([id, Buffer.from([1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1])]);
    case 3: // larger than any query
      return Buffer.alloc(5000, 0x41);
    case 4: {
      // an answer, not a query
      const a = query("junk.example");
      a.writeUInt8(a.readUInt8(2) | 0x80, 2);
      return a;
    }
    default: // a header with no question and trailing garbage
      return Buffer.concat([id, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe])]);
  }
}

if (values.junk !== undefined) {
  const count = boundedInt(values.junk, "junk", 0, 1, 100_000);
  const s = createSocket("udp4");
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve, reject) =>
      s.send(junk(i), port, host, (e) => (e ? reject(e) : resolve())),
    );
    // A breather now and then, so the receiver's socket buffer never overflows.
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20));
  }
  s.close();
  process.stdout.write(JSON.stringify({ sent: count }) + "\n");
} else {
  for (const name of values.name ?? []) {
    const t0 = performance.now();
    const msg = query(name);
    const answer = await (values.tcp ? viaTcp(msg) : viaUdp(msg));
    const ms = Math.round((performance.now() - t0) * 100) / 100;
    if (!answer) {
      process.stdout.write(JSON.stringify({ name, rcode: "TIMEOUT", addresses: [], ttls: [], ms }) + "\n");
      continue;
    }
    const p = dnsPacket.decode(answer);
    const rr = (p.answers ?? []).filter((a) => a.type === type) as { data: string; ttl?: number }[];
    process.stdout.write(
      JSON.stringify({
        name,
        rcode: (p as { rcode?: string }).rcode ?? "NOERROR",
        addresses: rr.map((a) => a.data),
        ttls: rr.map((a) => a.ttl),
        ms,
      }) + "\n",
    );
  }
}
