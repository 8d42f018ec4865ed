import { createSocket } from "node:dgram";
import { randomInt } from "node:crypto";
import { parseAddr } from "../net/ip.ts";
import type { ProbeOnce } from "./probe-inprocess.ts";

/** Cached by every resolver; any answer proves the path, so NXDOMAIN or REFUSED count too. */
export const DNS_PROBE_NAME = "example.com";

/** A standard query (RD set) for `name` IN A with the given id. */
export function dnsQuery(id: number, name: string = DNS_PROBE_NAME): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2);
  header.writeUInt16BE(1, 4);
  const labels = name
    .split(".")
    .filter(Boolean)
    .map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, "ascii")]));
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(1, 1); // QTYPE A
  tail.writeUInt16BE(1, 3); // QCLASS IN
  return Buffer.concat([header, ...labels, tail]);
}

/** A response (QR set) to our query id. */
export function isDnsAnswer(msg: Buffer, id: number): boolean {
  return msg.length >= 12 && msg.readUInt16BE(0) === id && (msg.readUInt16BE(2) & 0x8000) !== 0;
}

/** `dns`: a UDP A query to target:port; any response carrying our id is an answer. */
export function dnsProbe(port: number): ProbeOnce {
  return (target, source, timeoutMs) =>
    new Promise((resolve) => {
      const id = randomInt(0x10000);
      const sock = createSocket(target.family === 4 ? "udp4" : "udp6");
      let t0 = performance.now();
      let done = false;
      const finish = (rtt: number | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        try {
          sock.close();
        } catch {
          // never bound, or already closed after an error
        }
        resolve(rtt);
      };
      // setImmediate: after an event-loop stall, an answer that did arrive is read first.
      const timer = setTimeout(() => setImmediate(() => finish(null)), timeoutMs);
      sock.on("error", () => finish(null));
      sock.on("message", (msg, rinfo) => {
        const from = parseAddr(rinfo.address)?.text;
        if (rinfo.port === port && from === target.text && isDnsAnswer(msg, id))
          finish(performance.now() - t0);
      });
      sock.bind({ address: source.text, port: 0, exclusive: true }, () => {
        t0 = performance.now();
        sock.send(dnsQuery(id), port, target.text, (err) => {
          if (err) finish(null);
        });
      });
    });
}
