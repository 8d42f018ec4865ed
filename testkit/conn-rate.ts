// A steady stream of new TCP connections from a LAN client: RATE per second, evenly spaced, each
// bounded by TIMEOUT ms, for DURATION ms. Shared by the passive-health lab test and
// bench/uplinks-passive.ts. Every loop is bounded (rate ≤ 1000/s, duration ≤ 1 h).
import type { UplinkLab } from "../src/lab/uplink-lab.ts";

/** One connection: when it started (epoch ms), and the server's greeting ("inet SOURCE") or null. */
export interface Conn {
  t: number;
  seen: string | null;
}

export interface ConnSummary {
  ok: number;
  failed: number;
  /** Greeting → count: which uplink carried the connections that worked. */
  seen: Record<string, number>;
}

// Run with `node -e` inside the namespace. Prints one JSON line per connection when PER_CONN is 1,
// and a summary line {"summary": …} at the end (or on SIGTERM).
const SCRIPT = `
import { connect } from "node:net";
const [host, port, rate, timeout, duration, perConn] = process.argv.slice(1).map((x, i) => i ? Number(x) : x);
const start = Date.now();
const sum = { ok: 0, failed: 0, seen: {} };
let n = 0, open = 0, ended = false;
function once(t) {
  open++;
  const s = connect({ host, port });
  let buf = "", done = false;
  const finish = (line) => {
    if (done) return; done = true; open--;
    clearTimeout(timer); s.destroy();
    if (line === null) sum.failed++; else { sum.ok++; sum.seen[line] = (sum.seen[line] ?? 0) + 1; }
    if (perConn) process.stdout.write(JSON.stringify({ t, seen: line }) + "\\n");
    if (ended && open === 0) end();
  };
  const timer = setTimeout(() => finish(null), timeout);
  s.setEncoding("utf8");
  s.on("data", (d) => { buf += d; const nl = buf.indexOf("\\n"); if (nl >= 0) finish(buf.slice(0, nl)); });
  s.on("error", () => finish(null));
  s.on("close", () => finish(null));
}
function end() { process.stdout.write(JSON.stringify({ summary: sum }) + "\\n"); process.exit(0); }
const every = 1000 / rate;
function tick() {
  const now = Date.now();
  if (now - start > duration) { ended = true; if (open === 0) end(); return; }
  // Catch up after a late timer, but never more than 10 at once.
  for (let k = 0; k < 10 && start + n * every <= now; k++) { n++; once(now); }
  setTimeout(tick, Math.max(1, start + n * every - Date.now()));
}
process.stdout.write(JSON.stringify({ started: start }) + "\\n");
tick();
process.on("SIGTERM", () => { ended = true; setTimeout(end, timeout + 50); });
`;

export interface ConnRateOptions {
  /** New connections per second (1..1000). */
  rate: number;
  timeoutMs: number;
  durationMs: number;
  /** One line per connection (keep it off for long runs: the output kept is bounded). */
  perConnection?: boolean;
}

export interface ConnRate {
  /** Resolves when the client is done: every connection and the summary. */
  done: Promise<{ conns: Conn[]; summary: ConnSummary }>;
  stop(): Promise<void>;
}

export async function startConnRate(lab: UplinkLab, o: ConnRateOptions): Promise<ConnRate> {
  if (!(o.rate >= 1 && o.rate <= 1000)) throw new Error("rate must be 1..1000");
  if (!(o.durationMs > 0 && o.durationMs <= 3_600_000)) throw new Error("duration must be ≤ 1 h");
  const argv = [
    process.execPath,
    "--input-type=module",
    "-e",
    SCRIPT,
    lab.addr.server4,
    String(lab.ports.echo),
    String(o.rate),
    String(o.timeoutMs),
    String(o.durationMs),
    o.perConnection ? "1" : "0",
  ];
  const proc = lab.spawn("lan", argv);
  await proc.waitForLine(/"started"/, 10_000);
  const parse = () => {
    const conns: Conn[] = [];
    let summary: ConnSummary = { ok: 0, failed: 0, seen: {} };
    for (const l of proc.stdout().split("\n")) {
      if (!l.startsWith("{")) continue;
      try {
        const j = JSON.parse(l) as { t?: number; seen?: string | null; summary?: ConnSummary };
        if (j.summary) summary = j.summary;
        else if (typeof j.t === "number") conns.push({ t: j.t, seen: j.seen ?? null });
      } catch {
        // a line cut by the bounded output buffer
      }
    }
    conns.sort((a, b) => a.t - b.t);
    return { conns, summary };
  };
  const done = (async () => {
    await proc.exited;
    return parse();
  })();
  return {
    done,
    stop: async () => {
      await proc.stop(o.timeoutMs + 2000);
    },
  };
}
