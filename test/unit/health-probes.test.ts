// In-process probes: the round scheduler under a manual clock, and the tcp/http/dns probes against
// small servers on loopback (real sockets, short timeouts).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from "node:net";
import { createSocket, type Socket } from "node:dgram";
import { ManualClock } from "../../src/health/probe-clock.ts";
import { InProcessProber, type ProbeOnce } from "../../src/health/probe-inprocess.ts";
import { tcpProbe } from "../../src/health/probe-tcp.ts";
import { httpProbe } from "../../src/health/probe-http.ts";
import { DNS_PROBE_NAME, dnsProbe, dnsQuery, isDnsAnswer } from "../../src/health/probe-dns.ts";
import type { RoundResult } from "../../src/health/probe-types.ts";
import { parseAddr, type Addr } from "../../src/net/ip.ts";

const A = (s: string) => parseAddr(s) as Addr;

describe("in-process rounds", () => {
  const T = ["198.18.200.1", "198.18.200.2", "2001:db8:200::1"];

  function setup(addresses: Addr[]) {
    const clock = new ManualClock(0);
    const calls: { at: number; target: string; source: string; settle: (v: number | null) => void }[] = [];
    const probe: ProbeOnce = (target, source) =>
      new Promise((settle) =>
        calls.push({ at: clock.now(), target: target.text, source: source.text, settle }),
      );
    const rounds: RoundResult[] = [];
    const p = new InProcessProber(
      { targets: T, intervalMs: 200, timeoutMs: 500 },
      probe,
      (r) => rounds.push(r),
      {
        clock,
      },
    );
    p.start({ iface: "wan1", addresses });
    return { clock, calls, rounds, p };
  }
  const tick = () => new Promise((r) => setImmediate(r));

  test("every target at once each interval, each from the uplink's address of its family", async () => {
    const { clock, calls, p } = setup([A("100.64.1.2"), A("2001:db8:100:1::2")]);
    clock.advance(400);
    assert.deepEqual(
      calls.map((c) => `${c.at} ${c.target} from ${c.source}`),
      [0, 200, 400].flatMap((t) => [
        `${t} 198.18.200.1 from 100.64.1.2`,
        `${t} 198.18.200.2 from 100.64.1.2`,
        `${t} 2001:db8:200::1 from 2001:db8:100:1::2`,
      ]),
    );
    await p.stop();
  });

  test("answers become rounds in order; a probe that never settles is lost at the deadline", async () => {
    const { clock, calls, rounds, p } = setup([A("100.64.1.2"), A("2001:db8:100:1::2")]);
    calls[0]?.settle(3);
    calls[1]?.settle(null);
    await tick();
    assert.equal(rounds.length, 0, "the third answer is still due");
    clock.advance(200);
    for (const c of calls.slice(3)) c.settle(1);
    await tick();
    assert.equal(rounds.length, 0, "round 1 is complete but waits for round 0");
    clock.advance(400);
    await tick();
    assert.deepEqual(
      rounds.map((r) => `${r.seq}:${r.results.map((x) => x.rttMs ?? "-").join(",")}`),
      ["0:3,-,-", "1:1,1,1"],
    );
    await p.stop();
  });

  test("no address of a target's family: that target is lost without sending", async () => {
    const { clock, calls, rounds, p } = setup([A("100.64.1.2")]);
    assert.deepEqual(
      calls.map((c) => c.target),
      ["198.18.200.1", "198.18.200.2"],
    );
    for (const c of calls) c.settle(2);
    await tick();
    assert.deepEqual(rounds[0]?.results, [
      { target: "198.18.200.1", rttMs: 2 },
      { target: "198.18.200.2", rttMs: 2 },
      { target: "2001:db8:200::1", rttMs: null },
    ]);
    await p.stop();
    clock.advance(1000);
    assert.equal(calls.length, 2, "stopped");
  });

  test("no address at all: rounds fail with why", async () => {
    const { clock, calls, rounds, p } = setup([]);
    clock.advance(400);
    assert.equal(calls.length, 0);
    assert.equal(rounds.length, 3);
    assert.equal(rounds[0]?.error, "no address on wan1 for these targets");
    await p.stop();
  });
});

const LO = A("127.0.0.1");

describe("tcp probe", () => {
  let server: TcpServer;
  let port = 0;
  before(async () => {
    server = createTcpServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test("a completed handshake is an answer", async () => {
    const rtt = await tcpProbe(port)(LO, LO, 1000);
    assert.ok(rtt !== null && rtt >= 0 && rtt < 1000, `${rtt}`);
  });

  test("a refused connection or a source that is not ours is not", async () => {
    const closed = createTcpServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const dead = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    assert.equal(await tcpProbe(dead)(LO, LO, 1000), null);
    assert.equal(await tcpProbe(port)(LO, A("192.0.2.77"), 1000), null);
  });
});

describe("http probe", () => {
  let server: HttpServer;
  let port = 0;
  const seen: { path?: string; host?: string }[] = [];
  before(async () => {
    server = createHttpServer((req, res) => {
      seen.push({ path: req.url ?? "", host: req.headers.host ?? "" });
      const code = req.url === "/fail" ? 503 : req.url === "/moved" ? 302 : req.url === "/slow" ? 0 : 200;
      if (code === 0) return; // never answer
      res.writeHead(code, code === 302 ? { location: "/" } : {}).end("ok\n");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });

  test("2xx and 3xx are answers, with the path and Host asked for", async () => {
    assert.notEqual(await httpProbe(port, "/health")(LO, LO, 1000), null);
    assert.notEqual(await httpProbe(port, "/moved")(LO, LO, 1000), null);
    assert.deepEqual(seen.slice(0, 2), [
      { path: "/health", host: `127.0.0.1:${port}` },
      { path: "/moved", host: `127.0.0.1:${port}` },
    ]);
  });

  test("5xx and silence are not", async () => {
    assert.equal(await httpProbe(port, "/fail")(LO, LO, 1000), null);
    assert.equal(await httpProbe(port, "/slow")(LO, LO, 200), null);
  });
});

describe("dns probe", () => {
  let server: Socket;
  let port = 0;
  let mode: "answer" | "wrong-id" | "silent" = "answer";
  before(async () => {
    server = createSocket("udp4");
    server.on("message", (msg, rinfo) => {
      if (mode === "silent") return;
      const reply = Buffer.from(msg);
      reply.writeUInt16BE(0x8183, 2); // QR, RD, RA, NXDOMAIN: still an answer
      if (mode === "wrong-id") reply.writeUInt16BE((msg.readUInt16BE(0) + 1) & 0xffff, 0);
      server.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => server.bind(0, "127.0.0.1", r));
    port = server.address().port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test("the query asks for A of the probe name with recursion desired", () => {
    const q = dnsQuery(0x1234);
    assert.equal(q.readUInt16BE(0), 0x1234);
    assert.equal(q.readUInt16BE(2), 0x0100);
    assert.equal(q.readUInt16BE(4), 1);
    assert.equal(q.subarray(12, -4).toString("latin1"), "\x07example\x03com\x00");
    assert.equal(DNS_PROBE_NAME, "example.com");
    assert.equal(q.readUInt16BE(q.length - 4), 1);
    assert.ok(!isDnsAnswer(q, 0x1234), "a query is not an answer");
  });

  test("any response with our id is an answer; another id or silence is not", async () => {
    mode = "answer";
    assert.notEqual(await dnsProbe(port)(LO, LO, 1000), null);
    mode = "wrong-id";
    assert.equal(await dnsProbe(port)(LO, LO, 300), null);
    mode = "silent";
    assert.equal(await dnsProbe(port)(LO, LO, 200), null);
    assert.equal(await dnsProbe(port)(LO, A("192.0.2.77"), 500), null, "cannot bind a foreign source");
  });
});
