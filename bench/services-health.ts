// Health checks at scale (issue 11): `nflb run` with SERVICES round-robin services × 50 backends,
// every backend unreachable, the default `check: tcp` (interval 1s, timeout 500ms, fall 3),
// against the same config with `check: none` as the baseline, in the services lab.
//
//   node --import tsx bench/services-health.ts [--services 5000] [--seconds 600]
//
// Per run: daemon start to "nflb running", time to the first full round (every backend down),
// the daemon's CPU (utime + stime from /proc over that time), RSS, log lines, health reconciles
// (`applied (update)` lines with a backend reason), and API round trips measured meanwhile by curl
// in the balancer's namespace (GET / and a runtime weight change, one every second) against the
// same calls with check none. Needs root. Prints a markdown section for bench/RESULTS.md.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { repoPath } from "../src/paths.ts";
import { ServiceLab } from "../src/lab/service-lab.ts";
import { backendAddr, servicesConfigYaml } from "./lib/services-config.ts";
import { dateLine, loadLine, machineLine, requireRoot } from "./lib/report.ts";
import { fmtMs, markdownTable, summarize } from "./lib/stats.ts";

const { values } = parseArgs({
  options: {
    services: { type: "string", default: "5000" },
    seconds: { type: "string", default: "600" },
  },
  strict: true,
});
const SERVICES = Number(values.services);
const SECONDS = Number(values.seconds);
if (!Number.isInteger(SERVICES) || SERVICES < 10 || SERVICES > 5000)
  throw new Error("--services must be 10..5000");
if (!Number.isInteger(SECONDS) || SECONDS < 30 || SECONDS > 1800)
  throw new Error("--seconds must be 30..1800");
requireRoot("bench/services-health.ts");

const BACKENDS = 50;
const TOTAL = SERVICES * BACKENDS;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** USER_HZ: the unit of utime and stime in /proc/PID/stat (100 on Linux). */
const TICK = 100;

interface Run {
  check: string;
  startMs: number;
  roundMs: number | null;
  cpuPct: number;
  rssMiB: number;
  lines: number;
  applies: number;
  down: number;
  dashboard: number[];
  weight: number[];
  failedCalls: number;
}

async function cpuTicks(pid: number): Promise<number> {
  const f = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ") ?? [];
  return Number(f[11]) + Number(f[12]);
}

async function rss(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}

async function measure(lab: ServiceLab, check: "tcp" | "none", stopAfterMs: number | null): Promise<Run> {
  const text =
    check === "none"
      ? servicesConfigYaml(SERVICES, BACKENDS, "round-robin").replace(
          /^ {4}scheduler: round-robin\n/gm,
          "$&    check: { method: none }\n",
        )
      : servicesConfigYaml(SERVICES, BACKENDS, "round-robin");
  const file = await lab.writeConfig(`health-${check}.yaml`, text);
  const stateDir = await mkdtemp(join(tmpdir(), "nflb-svc-health-"));
  dirs.push(stateDir);
  const t0 = performance.now();
  const proc = lab.spawn("lb", [
    "env",
    `NFLB_STATE_DIR=${stateDir}`,
    repoPath("bin/nflb"),
    "run",
    "-c",
    file,
    "--api",
    "127.0.0.1:9110",
  ]);
  const run: Run = {
    check,
    startMs: 0,
    roundMs: null,
    cpuPct: 0,
    rssMiB: 0,
    lines: 0,
    applies: 0,
    down: 0,
    dashboard: [],
    weight: [],
    failedCalls: 0,
  };
  let rest = "";
  proc.child.stdout?.on("data", (chunk: Buffer) => {
    const parts = (rest + chunk.toString()).split("\n");
    rest = parts.pop() ?? "";
    for (const l of parts) {
      if (!l.startsWith("{")) continue;
      run.lines++;
      const j = JSON.parse(l) as Record<string, unknown>;
      const msg = String(j.msg);
      if (/^backend \S+ down$/.test(msg)) run.down++;
      else if (msg.includes("not logged one by one")) run.down += Number(j.down ?? 0);
      else if (msg === "applied (update)" && /backend health|^backend /.test(String(j.reason))) run.applies++;
    }
  });
  try {
    await proc.waitForLine(/"msg":"nflb running"/, 300_000);
    const running = performance.now();
    run.startMs = running - t0;
    const ticks0 = await cpuTicks(proc.pid);
    const curl = async (url: string, body?: unknown) => {
      const argv = ["curl", "-sS", "-o", "/dev/null", "--max-time", "60", "-w", "%{http_code} %{time_total}"];
      if (body !== undefined)
        argv.push("-X", "POST", "-H", "content-type: application/json", "-d", JSON.stringify(body));
      const r = await lab.exec("lb", [...argv, url], { timeoutMs: 70_000 });
      const [code, secs] = r.stdout.trim().split(" ");
      if (code !== "200") run.failedCalls++;
      return Number(secs) * 1000;
    };
    const weightUrl = `http://127.0.0.1:9110/api/v1/services/s7/backends/${backendAddr(7 * BACKENDS)}:80/weight`;
    const end = running + (stopAfterMs ?? SECONDS * 1000);
    for (let i = 0; performance.now() < end; i++) {
      if (run.down >= TOTAL && run.roundMs === null) run.roundMs = performance.now() - running;
      if (run.roundMs !== null && stopAfterMs === null) break;
      run.dashboard.push(await curl("http://127.0.0.1:9110/"));
      run.weight.push(await curl(weightUrl, { weight: 1 + (i % 3) }));
      run.rssMiB = Math.max(run.rssMiB, await rss(proc.pid));
      await sleep(1000);
    }
    const elapsed = (performance.now() - running) / 1000;
    run.cpuPct = (100 * ((await cpuTicks(proc.pid)) - ticks0)) / TICK / elapsed;
    return run;
  } finally {
    await proc.stop(30_000);
  }
}

const dirs: string[] = [];
const lab = new ServiceLab({ backends: 1 });
const keepAlive = setInterval(() => undefined, 1000);
try {
  await lab.build();
  const loadStart = loadLine();
  const tcp = await measure(lab, "tcp", null);
  // The baseline over as long a time as the checked run took to its first full round.
  const none = await measure(lab, "none", Math.max(30_000, tcp.roundMs ?? SECONDS * 1000));
  const med = (xs: number[]) => summarize(xs.length ? xs : [NaN]).median;
  const row = (r: Run) => [
    r.check,
    fmtMs(r.startMs),
    r.check === "none" ? "—" : r.roundMs === null ? `not within ${SECONDS} s` : fmtMs(r.roundMs),
    `${r.cpuPct.toFixed(0)} %`,
    r.rssMiB.toFixed(0),
    String(r.lines),
    String(r.applies),
    `${r.down.toLocaleString("en")} / ${TOTAL.toLocaleString("en")}`,
    `${fmtMs(med(r.dashboard))} (max ${fmtMs(Math.max(...r.dashboard))})`,
    `${fmtMs(med(r.weight))} (max ${fmtMs(Math.max(...r.weight))})`,
    String(r.failedCalls),
  ];
  console.log(`### Health checks at ${TOTAL.toLocaleString("en")} backends: ${SERVICES.toLocaleString("en")} services × ${BACKENDS}, every backend unreachable

${dateLine()}; ${await machineLine()}; ${loadStart} at start, ${loadLine()} at end.

\`\`\`sh
node --import tsx bench/services-health.ts --services ${SERVICES} --seconds ${SECONDS}
\`\`\`

\`nflb run\` (bin/nflb) in the services lab's balancer namespace, round-robin services as
bench/lib/services-config.ts writes them (backends in 198.18.0.0/15: the balancer's LAN /22 does not
answer ARP, the rest has no route), the default \`check: tcp\` (interval 1s, timeout 500ms, fall 3)
against \`check: { method: none }\`. "first full round": from "nflb running" until the log has
reported every backend down (per-backend lines plus the summaries' counts). CPU: the daemon's
utime + stime over that time (the baseline over as long). API: curl in the same namespace, GET /
then a runtime weight change (answered after its reconcile), one pair a second.

${markdownTable(
  [
    "check",
    "start ms",
    "first full round ms",
    "daemon CPU",
    "peak RSS MiB",
    "log lines",
    "health reconciles",
    "backends down",
    "GET / ms median",
    "weight change ms median",
    "failed calls",
  ],
  [row(tcp), row(none)],
)}

API medians with checks against without: GET / ${(med(tcp.dashboard) / med(none.dashboard)).toFixed(2)}×, weight change ${(med(tcp.weight) / med(none.weight)).toFixed(2)}×.
`);
} finally {
  await lab.destroy();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  clearInterval(keepAlive);
}
