// Lab server: tells every client which source address it sees (after any NAT on the way),
// optionally prefixed by a name so a backend can identify itself.
//
//   echo-server.ts [--name NAME] [--hold] --tcp ADDR:PORT … --udp ADDR:PORT … --http ADDR:PORT … --dns ADDR:PORT …
//
// TCP: writes "[NAME ]PEER\n"; then closes, or with --hold echoes everything back until the
// client closes (long-lived connections). UDP: answers each datagram with the same line.
// HTTP: 200 with that line as the body. DNS: a minimal valid answer (see dns-reply.ts).
// Prints {"ready":true,…} once every listener is bound.
import { createSocket } from "node:dgram";
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { parseArgs } from "node:util";
import { dnsReply } from "./dns-reply.ts";
import { formatEndpoint, parseEndpoint, plainAddress, type Endpoint } from "./endpoint.ts";

const { values } = parseArgs({
  options: {
    name: { type: "string" },
    hold: { type: "boolean", default: false },
    tcp: { type: "string", multiple: true, default: [] },
    udp: { type: "string", multiple: true, default: [] },
    http: { type: "string", multiple: true, default: [] },
    dns: { type: "string", multiple: true, default: [] },
  },
  strict: true,
});

const hold = values.hold ?? false;
const identify = (peer: string | undefined) =>
  values.name ? `${values.name} ${plainAddress(peer)}` : plainAddress(peer);

function listenTcp(ep: Endpoint): Promise<void> {
  const server = createTcpServer((sock) => {
    sock.on("error", () => undefined);
    sock.write(identify(sock.remoteAddress) + "\n");
    if (hold) sock.pipe(sock);
    else sock.end();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: ep.address, port: ep.port, ipv6Only: ep.family === 6 }, () => resolve());
  });
}

function listenHttp(ep: Endpoint): Promise<void> {
  const server = createHttpServer((req, res) => {
    res.writeHead(200, { "content-type": "text/plain", connection: "close" });
    res.end(identify(req.socket.remoteAddress) + "\n");
  });
  server.keepAliveTimeout = 1000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: ep.address, port: ep.port, ipv6Only: ep.family === 6 }, () => resolve());
  });
}

/** Bound to one address, so replies leave from the address the client sent to. */
function listenUdp(ep: Endpoint, reply: (msg: Buffer, peer: string) => Buffer | undefined): Promise<void> {
  const sock = createSocket({ type: ep.family === 6 ? "udp6" : "udp4", ipv6Only: ep.family === 6 });
  sock.on("message", (msg, rinfo) => {
    const out = reply(msg, rinfo.address);
    if (out) sock.send(out, rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    sock.once("error", reject);
    sock.bind({ address: ep.address, port: ep.port, exclusive: true }, () => resolve());
  });
}

const tcp = (values.tcp ?? []).map(parseEndpoint);
const udp = (values.udp ?? []).map(parseEndpoint);
const http = (values.http ?? []).map(parseEndpoint);
const dns = (values.dns ?? []).map(parseEndpoint);
if (tcp.length + udp.length + http.length + dns.length === 0) {
  process.stderr.write("echo-server: nothing to listen on (--tcp/--udp/--http/--dns)\n");
  process.exit(2);
}

await Promise.all([
  ...tcp.map(listenTcp),
  ...http.map(listenHttp),
  ...udp.map((ep) => listenUdp(ep, (_msg, peer) => Buffer.from(identify(peer) + "\n"))),
  ...dns.map((ep) => listenUdp(ep, (msg) => dnsReply(msg))),
]);
const listening = { tcp, udp, http, dns };
process.stdout.write(
  JSON.stringify({
    ready: true,
    pid: process.pid,
    listening: Object.fromEntries(Object.entries(listening).map(([k, eps]) => [k, eps.map(formatEndpoint)])),
  }) + "\n",
);
process.on("SIGTERM", () => process.exit(0));
