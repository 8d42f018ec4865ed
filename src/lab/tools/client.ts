// Lab client: opens COUNT connections (or UDP exchanges) to HOST:PORT, each reading the
// server's one-line reply, and prints one JSON ClientSummary line.
//
//   client.ts --host H --port P [--proto tcp|udp] [--count N] [--parallel K]
//             [--source ADDR …] [--timeout-ms T] [--deadline-ms D]
//
// Sources are used round-robin. Bounded: at most 100 000 connections, each limited by
// --timeout-ms, and none is started after --deadline-ms.
import { createSocket } from "node:dgram";
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { boundedInt } from "./endpoint.ts";
import { tcpLine } from "../tcp-line.ts";
import { ErrorList, bump, type ClientSummary } from "../traffic-summary.ts";

const { values } = parseArgs({
  options: {
    host: { type: "string" },
    port: { type: "string" },
    proto: { type: "string", default: "tcp" },
    count: { type: "string" },
    parallel: { type: "string" },
    source: { type: "string", multiple: true, default: [] },
    "timeout-ms": { type: "string" },
    "deadline-ms": { type: "string" },
  },
  strict: true,
});

const host = values.host ?? "";
if (isIP(host) === 0) throw new Error("--host must be an IP address");
const port = boundedInt(values.port, "port", 0, 1, 65535);
const proto = values.proto;
if (proto !== "tcp" && proto !== "udp") throw new Error("--proto must be tcp or udp");
const count = boundedInt(values.count, "count", 1, 1, 100_000);
const parallel = boundedInt(values.parallel, "parallel", 1, 1, 512);
const timeoutMs = boundedInt(values["timeout-ms"], "timeout-ms", 2000, 1, 60_000);
const deadlineMs = boundedInt(values["deadline-ms"], "deadline-ms", 30_000, 1, 600_000);
const sources = values.source ?? [];
for (const s of sources) if (isIP(s) === 0) throw new Error(`--source ${s} is not an IP address`);

function tcpOnce(source: string | undefined): Promise<string> {
  return tcpLine({ host, port, timeoutMs, ...(source ? { source } : {}) });
}

function udpOnce(source: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIP(host) === 6 ? "udp6" : "udp4");
    let finished = false;
    const done = (err: Error | undefined, line?: string) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(line ?? "");
    };
    const timer = setTimeout(() => done(new Error("timeout")), timeoutMs);
    sock.on("error", (err: NodeJS.ErrnoException) => done(new Error(err.code ?? err.message)));
    sock.on("message", (msg) => done(undefined, msg.toString("utf8").split("\n")[0]));
    sock.bind({ port: 0, ...(source ? { address: source } : {}) }, () => {
      sock.send("hello\n", port, host, (err) => err && done(new Error(err.message)));
    });
  });
}

const started = Date.now();
const summary: ClientSummary = {
  ok: 0,
  failed: 0,
  notStarted: 0,
  bySeen: {},
  bySource: {},
  errors: [],
  durationMs: 0,
};
const errors = new ErrorList();
let next = 0;

async function worker(): Promise<void> {
  while (next < count) {
    const n = next++;
    if (Date.now() - started > deadlineMs) {
      summary.notStarted++;
      continue;
    }
    const source = sources.length ? sources[n % sources.length] : undefined;
    try {
      const line = await (proto === "tcp" ? tcpOnce(source) : udpOnce(source));
      summary.ok++;
      bump(summary.bySeen, line);
      bump((summary.bySource[source ?? ""] ??= {}), line);
    } catch (err) {
      summary.failed++;
      errors.add(`${source ?? "*"}: ${(err as Error).message}`);
    }
  }
}

await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
summary.errors = errors.toJSON();
summary.durationMs = Date.now() - started;
process.stdout.write(JSON.stringify(summary) + "\n");
