// One-backend changes through the API of a running daemon (issue 11): `nflb run` with 5,000
// round-robin services × 50 backends, and the same with 10 services, in the services lab; CHANGES
// changes each (a runtime weight, back; a drain, an enable), one at a time.
//
//   node --import tsx bench/services-change.ts [--services 5000] [--changes 10] [--cpu-prof DIR]
//
// Per change: the API call's round trip, measured by a client in the balancer's namespace (the
// API answers once the reconcile run is over: the nft transaction committed), and the daemon's own
// breakdown from its `applied (update)` log line (the health view, reading the host's interfaces,
// planning with the diff, the nft transaction through the daemon's `nft -i` session; "other" is
// the round trip less those: HTTP, the override's bookkeeping, waiting for the event loop).
// Medians with their ratio to the 10-service run.
// Needs root. Prints a markdown section for bench/RESULTS.md.
import { jsonLines } from "../src/lab/processes.ts";
import { mkdtemp, rm } from "node:fs/promises";
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
    changes: { type: "string", default: "10" },
    // The daemon's CPU profiles (node --cpu-prof) go here, one per daemon: where a change's time goes.
    "cpu-prof": { type: "string" },
  },
  strict: true,
});
const SERVICES = Number(values.services);
const CHANGES = Number(values.changes);
if (!Number.isInteger(SERVICES) || SERVICES < 10 || SERVICES > 5000)
  throw new Error("--services must be 10..5000");
if (!Number.isInteger(CHANGES) || CHANGES < 1 || CHANGES > 50) throw new Error("--changes must be 1..50");
requireRoot("bench/services-change.ts");

const BACKENDS = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The client: one POST at a time to the daemon's API, one JSON line { i, ms, status, body } each.
const CLIENT = `
const calls = JSON.parse(process.argv[1]);
for (let i = 0; i < calls.length; i++) {
  const c = calls[i];
  const t0 = performance.now();
  const r = await fetch("http://127.0.0.1:9110" + c.path, {
    method: "POST",
    headers: c.body ? { "content-type": "application/json" } : {},
    body: c.body ? JSON.stringify(c.body) : undefined,
  });
  const body = await r.text();
  const ms = performance.now() - t0;
  process.stdout.write(JSON.stringify({ i, ms, status: r.status, body: body.slice(0, 300) }) + "\\n");
  await new Promise((r) => setTimeout(r, 300));
}
`;

interface Call {
  label: string;
  path: string;
  body?: { weight: number };
}

/** CHANGES changes: pairs (weight 5, weight 1) and (drain, enable) of backend 0, over services s0, s1, … */
function calls(): Call[] {
  const out: Call[] = [];
  for (let i = 0; out.length < CHANGES; i++) {
    const svc = `s${Math.floor(i / 2) % 10}`;
    const b = encodeURIComponent(`${backendAddr(Number(svc.slice(1)) * BACKENDS)}:80`);
    const base = `/api/v1/services/${svc}/backends/${b}`;
    const step = i % 4;
    out.push(
      step === 0
        ? { label: `${svc}: weight 5`, path: `${base}/weight`, body: { weight: 5 } }
        : step === 1
          ? { label: `${svc}: weight 1`, path: `${base}/weight`, body: { weight: 1 } }
          : step === 2
            ? { label: `${svc}: drain`, path: `${base}/drain` }
            : { label: `${svc}: enable`, path: `${base}/enable` },
    );
  }
  return out;
}

interface Measured {
  label: string;
  rtt: number;
  input: number;
  facts: number;
  plan: number;
  /** The daemon's CPU while planning (all its threads): on a busy machine plan is mostly waiting. */
  planCpu: number;
  nft: number;
  other: number;
}
type Step = keyof Omit<Measured, "label">;
const STEPS: [Step, string][] = [
  ["rtt", "request → committed"],
  ["input", "health view"],
  ["facts", "facts"],
  ["plan", "plan + diff"],
  ["planCpu", "plan + diff CPU"],
  ["nft", "nft"],
  ["other", "other"],
];

async function measure(lab: ServiceLab, services: number): Promise<{ rows: Measured[]; startMs: number }> {
  // No health checks: the backends are addresses nobody answers (250,000 of them at 5,000 × 50).
  const text = servicesConfigYaml(services, BACKENDS, "round-robin").replace(
    /^ {4}scheduler: round-robin\n/gm,
    "$&    check: { method: none }\n",
  );
  const file = await lab.writeConfig(`change-${services}.yaml`, text);
  const t0 = performance.now();
  const daemon = await startDaemon(lab, file);
  const startMs = performance.now() - t0;
  try {
    const list = calls();
    const client = lab.spawn("lb", [
      process.execPath,
      "--input-type=module",
      "-e",
      CLIENT,
      JSON.stringify(list),
    ]);
    const code = await client.exited;
    if (code !== 0) throw new Error(`client exited ${code}: ${client.stderr().slice(-2000)}`);
    const answers = client
      .stdout()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { i: number; ms: number; status: number; body: string });
    // The last log line may still be on its way. (The log's kept tail is capped: matched by
    // message and reason, not by position.)
    const updates = () =>
      daemon.logs().filter((l) => l.msg === "applied (update)" && String(l.reason).startsWith("api:"));
    for (let i = 0; i < 50 && updates().length < list.length; i++) await sleep(100);
    const applied = updates();
    if (answers.length !== list.length || applied.length !== list.length)
      throw new Error(
        `${answers.length} answers and ${applied.length} update lines for ${list.length} changes: ${JSON.stringify(answers.slice(0, 3))}; the daemon's output ends: ${daemon.proc.stdout().slice(-3000)}`,
      );
    for (const a of answers)
      if (a.status !== 200 || !a.body.includes('"applied":"update"'))
        throw new Error(`change ${a.i}: ${a.status} ${a.body}`);
    return {
      startMs,
      rows: list.map((c, i) => {
        const l = applied[i] as Record<string, unknown>;
        const rtt = answers[i]?.ms ?? 0;
        // Logs of a daemon before input_ms: the health view was counted in facts_ms.
        const input = Number(l.input_ms ?? 0);
        const facts = Number(l.facts_ms);
        const plan = Number(l.plan_ms);
        const planCpu = Number(l.plan_cpu_ms ?? 0);
        const nft = Number(l.nft_ms);
        const routing = Number(l.routing_ms ?? 0);
        return {
          label: c.label,
          rtt,
          input,
          facts,
          plan,
          planCpu,
          nft,
          other: Math.max(0, rtt - input - facts - plan - nft - routing),
        };
      }),
    };
  } finally {
    await daemon.proc.stop(10_000);
  }
}

/**
 * \`nflb run -c FILE\` in the balancer's namespace, as ServiceLab.startDaemon starts it, waiting
 * up to 3 minutes for it to run (the first load of 5,000 services takes 5–30 s on a busy machine).
 */
async function startDaemon(lab: ServiceLab, file: string) {
  const stateDir = await mkdtemp(join(tmpdir(), "nflb-svc-change-"));
  dirs.push(stateDir);
  const proc = lab.spawn("lb", [
    "env",
    `NFLB_STATE_DIR=${stateDir}`,
    ...(values["cpu-prof"] ? [`NODE_OPTIONS=--cpu-prof --cpu-prof-dir=${values["cpu-prof"]}`] : []),
    repoPath("bin/nflb"),
    "run",
    "-c",
    file,
  ]);
  try {
    await proc.waitForLine(/"msg":"nflb running"/, 180_000);
  } catch (e) {
    await proc.stop(10_000);
    throw e;
  }
  return { proc, logs: () => jsonLines(proc.stdout()) };
}

const dirs: string[] = [];
const lab = new ServiceLab({ backends: 1 });
const keepAlive = setInterval(() => undefined, 1000);
try {
  await lab.build();
  const loadStart = loadLine();
  const small = await measure(lab, 10);
  const big = await measure(lab, SERVICES);
  const table = (m: Measured[]) =>
    m.map((r, i) => [String(i + 1), r.label, ...STEPS.map(([k]) => fmtMs(r[k]))]);
  const head = ["#", "change", ...STEPS.map(([, name]) => `${name} ms`)];
  const med = (m: Measured[], k: Step) => summarize(m.map((r) => r[k])).median;
  const ratio = (k: Step) =>
    med(small.rows, k) > 0 ? (med(big.rows, k) / med(small.rows, k)).toFixed(2) : "–";
  const medians = STEPS.map(([k, name]) => [
    name,
    fmtMs(med(small.rows, k)),
    fmtMs(med(big.rows, k)),
    `${ratio(k)}×`,
  ]);
  console.log(`### One-backend changes through the API of \`nflb run\`: ${SERVICES.toLocaleString("en")} services × ${BACKENDS} against 10 × ${BACKENDS}

${dateLine()}; ${await machineLine()}; ${loadStart} at start, ${loadLine()} at end.

\`\`\`sh
node --import tsx bench/services-change.ts --services ${SERVICES} --changes ${CHANGES}
\`\`\`

\`nflb run\` (bin/nflb) in the services lab's balancer namespace, round-robin services as
bench/lib/services-config.ts writes them, \`check: { method: none }\`; ${CHANGES} changes one at a time
(300 ms apart) through the API. "request → committed" is the API call's round trip from a client
in the same namespace (the API answers after the reconcile run, so after the nft transaction was committed);
the other columns are the daemon's own \`applied (update)\` log line: building the health
view, reading the host's interfaces (0 when a services-only change reuses the last read),
planning + diff (and the daemon's CPU meanwhile, all its threads), the nft transaction of the update (through the daemon's \`nft -i\` session); "other" is the round trip less those (HTTP, the
override's bookkeeping, the event loop). Daemon start to "nflb running": 10
services ${fmtMs(small.startMs)} ms, ${SERVICES.toLocaleString("en")} services ${fmtMs(big.startMs)} ms.

10 services × ${BACKENDS}:

${markdownTable(head, table(small.rows))}

${SERVICES.toLocaleString("en")} services × ${BACKENDS}:

${markdownTable(head, table(big.rows))}

Medians:

${markdownTable(["step", "10 services ms", `${SERVICES.toLocaleString("en")} services ms`, "ratio"], medians)}
`);
} finally {
  await lab.destroy();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  clearInterval(keepAlive);
}
