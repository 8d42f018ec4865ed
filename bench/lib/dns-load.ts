// DNS load for bench/dns-forwarder.ts: COUNT A queries over UDP to SERVER with WINDOW in flight,
// names NAME with `#` replaced by FROM, FROM+1, … (modulo MOD when given). Prints one JSON line:
// queries per second, latency percentiles (ms), answers, timeouts (1 s).
//
//   node bench/lib/dns-load.ts SERVER PORT NAME COUNT WINDOW FROM [MOD]
import { createSocket } from "node:dgram";
import * as dnsPacket from "dns-packet";

const [server = "", port = "53", name = "", count = "0", window = "32", from = "0", mod = "0"] =
  process.argv.slice(2);
const N = Number(count);
const W = Number(window);
const first = Number(from);
const M = Number(mod);
const s = createSocket({ type: "udp4", recvBufferSize: 1 << 20 });
const inflight = new Map<number, { t: number; timer: NodeJS.Timeout }>();
const lat: number[] = [];
let sent = 0;
let timeouts = 0;
let answered = 0;
let nextId = 0;
const t0 = performance.now();
const done = new Promise<void>((resolve) => {
  const fill = () => {
    while (inflight.size < W && sent < N) {
      const i = sent++;
      const n = first + (M > 0 ? i % M : i);
      let id = nextId++ & 0xffff;
      while (inflight.has(id)) id = nextId++ & 0xffff;
      const q = dnsPacket.encode({
        type: "query",
        id,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: "A", name: name.replace("#", String(n)), class: "IN" }],
      });
      const timer = setTimeout(() => {
        inflight.delete(id);
        timeouts++;
        fill();
      }, 1000);
      inflight.set(id, { t: performance.now(), timer });
      s.send(q, Number(port), server);
    }
    if (sent >= N && inflight.size === 0) resolve();
  };
  s.on("message", (msg) => {
    const q = inflight.get(msg.readUInt16BE(0));
    if (!q) return;
    clearTimeout(q.timer);
    inflight.delete(msg.readUInt16BE(0));
    lat.push(performance.now() - q.t);
    // RCODE in the low 4 bits of byte 3, answer count in bytes 6-7: NOERROR with an answer.
    if ((msg.readUInt8(3) & 0x0f) === 0 && msg.length >= 8 && msg.readUInt16BE(6) > 0) answered++;
    fill();
  });
  fill();
});
await done;
const secs = (performance.now() - t0) / 1000;
s.close();
lat.sort((a, b) => a - b);
const pick = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
process.stdout.write(
  JSON.stringify({
    qps: lat.length / secs,
    p50: pick(0.5),
    p99: pick(0.99),
    max: lat.at(-1) ?? NaN,
    answers: lat.length,
    withAddress: answered,
    timeouts,
  }) + "\n",
);
