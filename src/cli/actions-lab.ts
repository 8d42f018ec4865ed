import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { parseDuration } from "../config/duration.ts";
import type { StatusJson } from "../daemon/status.ts";
import { formatStatus } from "../daemon/status-table.ts";
import {
  DEMO_DIR,
  cutUplinks,
  ensureDemoDir,
  isRunning,
  lastTrafficReport,
  readDemoRecord,
  readTrafficRecord,
  runKeeper,
  runningDemo,
  setUpstreamCut,
  startTraffic,
  stopDemo,
  stopTraffic,
  type DemoRecord,
  type KeeperLine,
} from "../lab/demo-keeper.ts";
import { TRAFFIC_DEFAULTS, TRAFFIC_LIMITS } from "../lab/demo-traffic.ts";
import { labUnavailableReason } from "../lab/netns.ts";
import { tsxArgv } from "../paths.ts";

/** Building the lab takes a few seconds; a loaded machine gets generous slack. */
const UP_TIMEOUT_MS = 180_000;

const say = (m: string) => process.stdout.write(`${m}\n`);

/** Errors the user can act on: one line, exit 1 (main.ts shows a stack for anything else). */
function fail(message: string): never {
  process.stderr.write(`nflb: ${message}\n`);
  process.exit(1);
}

export async function labUp(o: { traffic: boolean }): Promise<void> {
  await needLab();
  const running = await runningDemo();
  if (running) {
    process.stderr.write(
      `nflb: a demo lab already runs (namespaces ${running.prefix}*, keeper pid ${running.keeper.pid})` +
        `${running.url ? `: ${running.url}` : ""}\n  remove it first: nflb lab down\n`,
    );
    process.exit(1);
  }
  if (await stopDemo(DEMO_DIR)) say("removed what a previous demo left behind");
  await ensureDemoDir();
  const t0 = Date.now();
  say("building the nflb demo lab (network namespaces only; the host's own network is not touched)");
  const ready = await startKeeper(DEMO_DIR, (m) =>
    say(`  [${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}`),
  ).catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)));
  const rec = await readDemoRecord();
  if (!rec) throw new Error("the demo started but its record is missing");
  let trafficLine = "off (start it with: nflb lab traffic)";
  if (o.traffic) {
    const t = await startTraffic(rec, {
      rate: TRAFFIC_DEFAULTS.rate,
      durationMs: TRAFFIC_DEFAULTS.durationMs,
    });
    trafficLine = `${t.rate} connections/s from the LAN client for ${fmtMs(t.durationMs)} (nflb lab traffic restarts it)`;
  }
  say("");
  say(`nflb demo is up (${((Date.now() - t0) / 1000).toFixed(1)}s). Dashboard:`);
  say("");
  say(`  ${ready.url}`);
  say("");
  say(`  API token: ${ready.token}   (the dashboard asks for it when you first press a button)`);
  say(`  traffic:   ${trafficLine}`);
  say(`  try:       nflb lab cut isp1 · nflb lab restore isp1 · nflb lab status · nflb lab down`);
  say(`  files:     ${DEMO_DIR} (nflb.yaml, nflb.log)`);
}

export async function labDown(): Promise<void> {
  await needLab();
  if (await stopDemo(DEMO_DIR, (m) => say(m))) say("demo lab removed");
  else say("no demo lab is running");
}

export async function labCut(link: string): Promise<void> {
  const rec = await needDemo();
  if (!rec.uplinks?.includes(link)) fail(`no uplink ${link} in the demo (${rec.uplinks?.join(", ")})`);
  await setUpstreamCut(rec, link, true);
  say(`${link}: upstream cut (the router still sees carrier; only the probes can tell)`);
}

export async function labRestore(link: string): Promise<void> {
  const rec = await needDemo();
  if (!rec.uplinks?.includes(link)) fail(`no uplink ${link} in the demo (${rec.uplinks?.join(", ")})`);
  await setUpstreamCut(rec, link, false);
  say(`${link}: upstream restored (it comes back after up_after good probe rounds)`);
}

export async function labTraffic(o: { rate: string; duration: string; stop?: boolean }): Promise<void> {
  const rec = await needDemo();
  if (o.stop) {
    say((await stopTraffic()) ? "traffic stopped" : "no traffic was running");
    return;
  }
  const rate = Number(o.rate);
  if (!Number.isInteger(rate) || rate < 1 || rate > TRAFFIC_LIMITS.maxRate)
    fail(`--rate must be an integer 1..${TRAFFIC_LIMITS.maxRate}`);
  const durationMs = parseDuration(o.duration);
  if (durationMs === null || durationMs < 1000 || durationMs > TRAFFIC_LIMITS.maxDurationMs)
    fail("--duration must be a duration between 1s and 1h, like 90s or 10m");
  const t = await startTraffic(rec, { rate, durationMs });
  say(
    `traffic: ${t.rate} connections/s for ${fmtMs(t.durationMs)} (pid ${t.pid}; log ${join(DEMO_DIR, "traffic.log")})`,
  );
}

export async function labStatus(o: { json?: boolean }): Promise<void> {
  const rec = await runningDemo();
  if (!rec) {
    if (o.json) say(JSON.stringify({ running: false }));
    else process.stderr.write("nflb: no demo lab is running (start one: nflb lab up)\n");
    process.exit(1);
  }
  const traffic = await readTrafficRecord();
  const trafficRunning = isRunning(traffic);
  const report = await lastTrafficReport();
  const cut = await cutUplinks(rec);
  const status = rec.url ? await fetchStatus(rec.url) : null;
  if (o.json) {
    say(
      JSON.stringify(
        {
          running: true,
          demo: rec,
          traffic: { running: trafficRunning, ...traffic, report },
          cut,
          status,
        },
        null,
        2,
      ),
    );
    return;
  }
  say(`demo lab: namespaces ${rec.prefix}*, keeper pid ${rec.keeper.pid}, since ${rec.startedAt}`);
  say(`dashboard: ${rec.url ?? "(still starting)"}   API token: ${rec.token ?? "-"}`);
  const tr = report ? ` — ${report.ok} ok, ${report.failed} failed so far` : "";
  say(`traffic: ${trafficRunning ? `running, ${traffic?.rate}/s` : "stopped"}${tr}`);
  say(`cut upstream: ${cut.length ? cut.join(", ") : "none"}`);
  if (status)
    say("\n" + formatStatus(status, process.stdout.isTTY === true && !process.env.NO_COLOR).trimEnd());
  else say("nflb run: not answering");
}

export async function labKeeper(o: { dir: string }): Promise<void> {
  await runKeeper(o.dir);
}

async function needLab(): Promise<void> {
  const why = await labUnavailableReason();
  if (why) fail(`the lab cannot run here: ${why}`);
}

async function needDemo(): Promise<DemoRecord> {
  const rec = await runningDemo();
  if (!rec?.url) {
    process.stderr.write(`nflb: no demo lab is ${rec ? "ready yet" : "running"} (start one: nflb lab up)\n`);
    process.exit(1);
  }
  return rec;
}

async function fetchStatus(url: string): Promise<StatusJson | null> {
  try {
    const res = await fetch(new URL("api/v1/status", url), { signal: AbortSignal.timeout(3000) });
    return res.ok ? ((await res.json()) as StatusJson) : null;
  } catch {
    return null;
  }
}

function fmtMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}

/**
 * Start the keeper detached (its own session, output to keeper.log) and follow its progress
 * until it is ready. On failure or Ctrl-C the keeper is stopped, which removes what it built.
 */
async function startKeeper(
  dir: string,
  progress: (m: string) => void,
): Promise<{ url: string; token: string; prefix: string }> {
  const logFile = join(dir, "keeper.log");
  const fd = openSync(logFile, "w", 0o600);
  let pid: number | undefined;
  let exited = false;
  try {
    const [node = process.execPath, ...args] = tsxArgv("cli/main.ts", ["lab", "keeper", "--dir", dir]);
    const child = spawn(node, args, { detached: true, stdio: ["ignore", fd, fd], cwd: "/" });
    pid = child.pid;
    child.on("exit", () => (exited = true));
    child.unref();
  } finally {
    closeSync(fd);
  }
  if (pid === undefined) throw new Error("could not start the demo keeper");
  const keeperPid = pid;
  const abort = () => {
    process.stderr.write("\ninterrupted: removing the half-built demo…\n");
    void stopDemo(dir).finally(() => process.exit(130));
  };
  process.once("SIGINT", abort);
  try {
    return await followKeeper(logFile, keeperPid, () => exited, progress);
  } catch (e) {
    await stopDemo(dir);
    throw e;
  } finally {
    process.removeListener("SIGINT", abort);
  }
}

async function followKeeper(
  logFile: string,
  pid: number,
  hasExited: () => boolean,
  progress: (m: string) => void,
): Promise<{ url: string; token: string; prefix: string }> {
  const deadline = Date.now() + UP_TIMEOUT_MS;
  const fh = await open(logFile, "r");
  let offset = 0;
  let partial = "";
  const other: string[] = [];
  try {
    for (;;) {
      const alive = !hasExited();
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        partial += buf.subarray(0, bytesRead).toString("utf8");
      }
      const lines = partial.split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        let l: KeeperLine;
        try {
          l = JSON.parse(line) as KeeperLine;
        } catch {
          if (line.trim()) other.push(line);
          continue;
        }
        if ("progress" in l) progress(l.progress);
        else if ("warning" in l) progress(`warning: ${l.warning}`);
        else if ("error" in l) throw new Error(`the demo failed to start: ${l.error}`);
        else if ("ready" in l) return l.ready;
      }
      if (!alive)
        throw new Error(
          `the demo keeper (pid ${pid}) exited before the demo was ready\n${other.slice(-20).join("\n")}`,
        );
      if (Date.now() > deadline) throw new Error(`the demo was not ready within ${UP_TIMEOUT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await fh.close();
  }
}
