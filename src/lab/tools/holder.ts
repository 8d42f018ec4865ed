// Long-lived connection: connects to an echo-server running with --hold, then exchanges
// "seq N" lines every --interval-ms for --duration-ms (or until SIGTERM). Prints a
// {"type":"connected",…} line once the greeting arrives and a {"type":"summary",…} line at
// the end. A late or missing echo counts as a failure; a reset or close ends the run.
//
//   holder.ts --host H --port P [--source ADDR] [--interval-ms 200] [--duration-ms 5000] [--timeout-ms 1000]
import { connect, isIP } from "node:net";
import { parseArgs } from "node:util";
import { boundedInt } from "./endpoint.ts";
import { ErrorList, type HolderConnected, type HolderSummary } from "../traffic-summary.ts";

const { values } = parseArgs({
  options: {
    host: { type: "string" },
    port: { type: "string" },
    source: { type: "string" },
    "interval-ms": { type: "string" },
    "duration-ms": { type: "string" },
    "timeout-ms": { type: "string" },
  },
  strict: true,
});

const host = values.host ?? "";
if (isIP(host) === 0) throw new Error("--host must be an IP address");
const port = boundedInt(values.port, "port", 0, 1, 65535);
const intervalMs = boundedInt(values["interval-ms"], "interval-ms", 200, 10, 60_000);
const durationMs = boundedInt(values["duration-ms"], "duration-ms", 5000, 1, 3_600_000);
const timeoutMs = boundedInt(values["timeout-ms"], "timeout-ms", 1000, 1, 60_000);

const started = Date.now();
const elapsed = () => Date.now() - started;
const errors = new ErrorList();
const summary: HolderSummary = {
  type: "summary",
  connected: false,
  greeting: null,
  exchanges: 0,
  failures: 0,
  errors: [],
  end: "duration",
  elapsedMs: 0,
  lastOkMs: null,
  firstFailureMs: null,
};

let finished = false;
function finish(end: HolderSummary["end"]): void {
  if (finished) return;
  finished = true;
  summary.end = end;
  summary.errors = errors.toJSON();
  summary.elapsedMs = elapsed();
  process.stdout.write(JSON.stringify(summary) + "\n", () => process.exit(0));
}

function fail(message: string): void {
  summary.failures++;
  summary.firstFailureMs ??= elapsed();
  errors.add(message);
}

process.on("SIGTERM", () => finish("signal"));
setTimeout(() => finish("duration"), durationMs);

const sock = connect({ host, port, ...(values.source ? { localAddress: values.source } : {}) });
sock.setEncoding("utf8");
sock.setNoDelay(true);
let buf = "";
let seq = 0;
/** seq → when its timeout fires; echoes for forgotten seqs are ignored. */
const pending = new Map<number, NodeJS.Timeout>();

const connectTimer = setTimeout(() => {
  fail(`no greeting within ${timeoutMs} ms`);
  sock.destroy();
  finish("error");
}, timeoutMs);

function onLine(line: string): void {
  if (summary.greeting === null) {
    clearTimeout(connectTimer);
    summary.connected = true;
    summary.greeting = line;
    const hello: HolderConnected = {
      type: "connected",
      greeting: line,
      localAddress: sock.localAddress ?? "",
      localPort: sock.localPort ?? 0,
    };
    process.stdout.write(JSON.stringify(hello) + "\n");
    tick();
    return;
  }
  const m = /^seq (\d+)$/.exec(line);
  const n = m ? Number(m[1]) : NaN;
  const timer = pending.get(n);
  if (timer === undefined) return;
  clearTimeout(timer);
  pending.delete(n);
  summary.exchanges++;
  summary.lastOkMs = elapsed();
}

function tick(): void {
  if (finished) return;
  const n = ++seq;
  pending.set(
    n,
    setTimeout(() => {
      pending.delete(n);
      fail(`seq ${n}: no echo within ${timeoutMs} ms`);
    }, timeoutMs),
  );
  sock.write(`seq ${n}\n`);
  setTimeout(tick, intervalMs);
}

sock.on("data", (d: string) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    onLine(buf.slice(0, nl));
    buf = buf.slice(nl + 1);
  }
});
sock.on("error", (err: NodeJS.ErrnoException) => {
  fail(`socket: ${err.code ?? err.message}`);
  finish("error");
});
sock.on("close", () => {
  if (!finished) {
    fail("closed by peer");
    finish("closed");
  }
});
