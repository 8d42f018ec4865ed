// How fast the passive check (check.passive) takes a killed backend out, under 50 new
// connections a second: `nflb run` in a lab, a paced client, one backend's server killed (SIGKILL)
// and started again, ROUNDS times.
//
//   node --import tsx bench/services-passive.ts [--rounds 20]
//
// Per round: detection = the daemon's "backend … down" log line minus the kill; the failing
// window = the start of the last failed client connection minus the kill; failed = connections
// that failed in the round. Active checks every 3 s (fall 3, so ≥ 6 s on their own; rise 1
// brings the backend back between rounds). Needs root. Prints a markdown section.
import { parseArgs } from "node:util";
import { SERVICE_LAB as L, ServiceLab, backendAddress } from "../src/lab/service-lab.ts";
import { dateLine, loadLine, machineLine, requireRoot } from "./lib/report.ts";
import { markdownTable, summarize } from "./lib/stats.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "20" } }, strict: true });
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 50) throw new Error("--rounds must be 1..50");
requireRoot("bench/services-passive.ts");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DEAD = 2;
const deadKey = `${backendAddress(DEAD).v4}:80`;

// A new TCP connection every EVERY ms for DURATION ms, each waiting up to 1 s for the greeting:
// one JSON line { t, ok } per connection.
const PACED = `
import { connect } from "node:net";
const [host, port, every, duration] = process.argv.slice(1);
const start = Date.now();
let inflight = 0;
const once = (t) => {
  inflight++;
  const s = connect({ host, port: Number(port) });
  let done = false;
  const end = (ok) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    s.destroy();
    inflight--;
    process.stdout.write(JSON.stringify({ t, ok }) + "\\n");
  };
  const timer = setTimeout(() => end(false), 1000);
  s.on("data", (d) => { if (d.includes(10)) end(true); });
  s.on("error", () => end(false));
  s.on("close", () => end(false));
};
const tick = setInterval(() => {
  if (Date.now() - start > Number(duration)) { clearInterval(tick); return; }
  if (inflight < 100) once(Date.now());
}, Number(every));
`;

const lab = new ServiceLab({ backends: 3 });
const keepAlive = setInterval(() => undefined, 1000);
const rows: { detectMs: number; failingMs: number; failed: number; total: number; reason: string }[] = [];
try {
  await lab.build();
  for (const i of [1, 2, 3]) await lab.startBackend(i);
  const daemon = await lab.startDaemon(
    await lab.writeConfig(
      "passive.yaml",
      `version: 1
services:
  pas:
    listen: ${L.vip4}:80
    check: { method: tcp, interval: 3s, timeout: 500ms, rise: 1, fall: 3, passive: true }
    backends:
${[1, 2, 3].map((i) => `      - { address: ${backendAddress(i).v4}:80 }`).join("\n")}
`,
    ),
  );
  const loadStart = loadLine();
  const stateOf = async () => {
    const r = await lab.nflb(["status", "--json"]);
    const s = JSON.parse(r.stdout) as { services: { backends: { address: string; state: string }[] }[] };
    return s.services[0]?.backends.find((b) => b.address === deadKey)?.state;
  };
  for (let round = 0; round < ROUNDS; round++) {
    const paced = lab.spawn("client", [
      process.execPath,
      "--input-type=module",
      "-e",
      PACED,
      L.vip4,
      "80",
      "20",
      "3000",
    ]);
    await sleep(1000);
    const logsBefore = daemon.logs().length;
    const killedAt = Date.now();
    await lab.killBackend(DEAD);
    await paced.exited;
    const results = paced
      .stdout()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { t: number; ok: boolean });
    const failed = results.filter((r) => !r.ok);
    const down = daemon
      .logs()
      .slice(logsBefore)
      .find((l) => typeof l.msg === "string" && l.msg === `backend pas/${deadKey} down`);
    if (!down) throw new Error(`round ${round}: no down line in the daemon's log`);
    rows.push({
      detectMs: Date.parse(String(down.time)) - killedAt,
      failingMs: (failed.at(-1)?.t ?? killedAt) - killedAt,
      failed: failed.length,
      total: results.length,
      reason: String(down.reason),
    });
    await lab.startBackend(DEAD);
    for (let i = 0; (await stateOf()) !== "up"; i++) {
      if (i > 100) throw new Error(`round ${round}: the backend did not come back`);
      await sleep(200);
    }
  }
  const detect = summarize(rows.map((r) => r.detectMs));
  const failing = summarize(rows.map((r) => r.failingMs));
  const failedN = summarize(rows.map((r) => r.failed));
  const passive = rows.filter((r) => r.reason.startsWith("passive:")).length;
  console.log(`### Passive check: detection time of a killed backend at 50 new connections/s

${dateLine()}; ${await machineLine()}; ${loadStart} at start, ${loadLine()} at end.

\`\`\`sh
node --import tsx bench/services-passive.ts --rounds ${ROUNDS}
\`\`\`

Round-robin over 3 backends, \`check: { method: tcp, interval: 3s, fall: 3, rise: 1, passive: true }\`
(passive defaults: 5 failures among a backend's last 10 new connections); ${passive} of ${ROUNDS}
rounds were taken down by the passive check (the others by the active one).

${markdownTable(
  ["", "median", "min", "max"],
  [
    ["kill → backend down (daemon log)", `${detect.median} ms`, `${detect.min} ms`, `${detect.max} ms`],
    [
      "kill → last failed client connection",
      `${failing.median} ms`,
      `${failing.min} ms`,
      `${failing.max} ms`,
    ],
    [
      "failed connections per round (of ~150)",
      String(failedN.median),
      String(failedN.min),
      String(failedN.max),
    ],
  ],
)}

Reasons seen: ${[...new Set(rows.map((r) => r.reason.replace(/\d+ of \d+/, "N of M")))].join("; ")}.
`);
} finally {
  await lab.destroy();
  clearInterval(keepAlive);
}
