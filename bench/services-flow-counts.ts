// What counting a service's open connections costs with 100,000 tracked flows: the daemon's
// conntrack event stream (src/health/flow-monitor.ts) against the per-request `conntrack -L` parse
// it replaced, measured in the same run.
//
//   node --import tsx bench/services-flow-counts.ts [--count 100000]
//
// The balancer's namespace gets a UDP service (VIP 203.0.113.10:53 → 4 backends, `nflb apply`)
// and COUNT flows through it: a sender in the client's namespace sends one datagram from each of
// COUNT sockets (up to 760 source addresses × 132 ports), so every datagram is a new DNATed flow.
// The backends' namespace drops them; the flows live 10 minutes (nf_conntrack_udp_timeout in the
// balancer's namespace). Needs root. Prints a markdown section.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { SERVICE_LAB as L, ServiceLab, backendAddress } from "../src/lab/service-lab.ts";
import { NFLB_BIN, tsNode } from "./lib/paths.ts";
import { dateLine, loadLine, machineLine, requireRoot } from "./lib/report.ts";
import { markdownTable } from "./lib/stats.ts";

const { values } = parseArgs({ options: { count: { type: "string", default: "100000" } }, strict: true });
const COUNT = Number(values.count);
const PER_SOURCE = 132;
if (!Number.isInteger(COUNT) || COUNT < 1000 || COUNT > 760 * PER_SOURCE)
  throw new Error(`--count must be 1000..${760 * PER_SOURCE}`);
requireRoot("bench/services-flow-counts.ts");

// Plain JS in the client: from each source address in turn, PER sockets (ephemeral ports, all
// open at once so none is reused) send one datagram each, until COUNT are sent; then exit.
const SENDER = `
import { createSocket } from "node:dgram";
const [vip, per, count, ...sources] = process.argv.slice(1);
let sent = 0;
for (const src of sources) {
  if (sent >= Number(count)) break;
  const n = Math.min(Number(per), Number(count) - sent);
  const socks = await Promise.all(Array.from({ length: n }, () => new Promise((r) => {
    const s = createSocket("udp4");
    s.bind({ address: src, port: 0 }, () => r(s));
  })));
  await Promise.all(socks.map((s) => new Promise((r) => s.send("x", 53, vip, r))));
  for (const s of socks) s.close();
  sent += n;
}
`;

const lab = new ServiceLab({ backends: 4, clientSources: Math.ceil(COUNT / PER_SOURCE) });
const dir = await mkdtemp(join(tmpdir(), "nflb-bench-flows-"));
// Lab processes are unref'd: something has to keep this process alive while it waits for them.
const keepAlive = setInterval(() => undefined, 1000);
try {
  await lab.build();
  const cfg = join(dir, "nflb.yaml");
  await writeFile(
    cfg,
    `version: 1
services:
  dns:
    listen: ${L.vip4}:53
    protocol: udp
    check: { method: none }
    backends:
${[1, 2, 3, 4].map((i) => `      - { address: ${backendAddress(i).v4}:53 }`).join("\n")}
`,
  );
  await lab
    .exec("lb", [NFLB_BIN, "apply", "-c", cfg], { env: { ...process.env, NFLB_STATE_DIR: dir } })
    .then((r) => {
      if (r.code !== 0) throw new Error(`nflb apply: ${r.stderr}`);
    });
  await lab.run("lb", ["sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=600"]);
  await lab.run("srv", ["nft", "-f", "-"], {
    input:
      "table inet bench_drop {\n  chain in {\n    type filter hook input priority 0; policy accept;\n    udp dport 53 drop\n  }\n}\n",
  });

  const child = lab.spawn(
    "lb",
    tsNode("bench/lib/flow-counts-child.ts", [`udp ${L.vip4} 53`, L.vip4, "53", String(COUNT)]),
  );
  await child.waitForLine(/"ready":true/, 60_000);
  const loadStart = loadLine();
  const t0 = Date.now();
  const sender = lab.spawn("client", [
    process.execPath,
    "--input-type=module",
    "-e",
    SENDER,
    L.vip4,
    String(PER_SOURCE),
    String(COUNT),
    ...lab.sources,
  ]);
  const sent = await sender.exited;
  const sendMs = Date.now() - t0;
  if (sent !== 0) throw new Error(`sender exited ${sent}: ${sender.stderr()}`);
  const line = await child.waitForLine(/"result"/, 300_000);
  const r = (JSON.parse(line) as { result: Result }).result;

  const f = (n: number, d = 1) => n.toFixed(d);
  console.log(`### Least-conn/status connection counts with ${COUNT.toLocaleString("en")} tracked flows

${dateLine()}; ${await machineLine()}; ${loadStart} at start, ${loadLine()} at end.

\`\`\`sh
node --import tsx bench/services-flow-counts.ts --count ${COUNT}
\`\`\`

${markdownTable(
  ["what", "wall", "CPU of the daemon's process", "notes"],
  [
    [
      "read one service's counts (status, metrics, least-conn), event stream",
      `${f(r.readUs, 2)} µs`,
      "same",
      `${r.tracked.toLocaleString("en")} flows tracked; O(backends), not O(flows)`,
    ],
    [
      "per-request `conntrack -L --orig-dst VIP` + parse (before)",
      `${f(r.perRequestList.ms)} ms`,
      `${f(r.perRequestList.cpuMs)} ms (+ conntrack's own)`,
      `${r.perRequestList.flows.toLocaleString("en")} flows listed per request`,
    ],
    [
      "full listing into a fresh table (the event stream's resync: start, ENOBUFS, every 10 min)",
      `${f(r.listing.ms)} ms`,
      `${f(r.listing.cpuMs)} ms`,
      `${r.listing.flows.toLocaleString("en")} flows`,
    ],
    [
      `ingesting ${COUNT.toLocaleString("en")} NEW events (sender: ${f(sendMs / 1000)} s)`,
      `${f(r.ingest.ms / 1000)} s`,
      `${f(r.ingest.cpuMs)} ms (${f((r.ingest.cpuMs * 1000) / COUNT, 2)} µs per event)`,
      `${r.ingest.counted.toLocaleString("en")} counted; RSS ${f(r.rssMiB.before)} → ${f(r.rssMiB.after)} MiB`,
    ],
  ],
)}
${r.lost.length ? `\nMonitor log: ${r.lost.join("; ")}\n` : ""}`);
} finally {
  await lab.destroy();
  clearInterval(keepAlive);
  await rm(dir, { recursive: true, force: true });
}

interface Result {
  tracked: number;
  ingest: { ms: number; cpuMs: number; counted: number };
  readUs: number;
  rssMiB: { before: number; after: number };
  listing: { ms: number; cpuMs: number; flows: number };
  perRequestList: { ms: number; cpuMs: number; flows: number };
  lost: string[];
}
