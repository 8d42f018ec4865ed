// The demo outlives the `nflb lab up` command: a detached keeper process builds it, owns it (so
// another run's stale-lab cleanup leaves it alone), holds `nflb run` as its child and tears it
// all down on SIGTERM. Its files live in one directory under /run (tmpfs, gone after a reboot
// together with the namespaces):
//
//   demo.json    prefix, pids, URL, token      keeper.log  progress lines (JSON) for `lab up`
//   nflb.yaml    the demo config               nflb.log    the daemon's log
//   traffic.json the traffic generator's pid   traffic.log its progress lines
import { spawn } from "node:child_process";
import { createWriteStream, closeSync, openSync, readFileSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { wrapNetns } from "../system/exec.ts";
import { run } from "../system/exec.ts";
import { destroyLabPrefix, ownerIsAlive, processStartTime, type LabOwner } from "./cleanup.ts";
import { newDemoLab, demoTrafficTargets, startDemo, type Demo } from "./demo.ts";
import { trafficArgv, type TrafficReport } from "./demo-traffic.ts";
import { ISP_TABLE, renderIspControl } from "./isp-firewall.ts";
import { LAB_RUN_DIR, isLabPrefix, netnsName } from "./names.ts";

export const DEMO_DIR = join(LAB_RUN_DIR, "demo");
/** The daemon's log stops growing here: a demo left running for days must not fill /run. */
const DAEMON_LOG_LIMIT = 20 * 1024 * 1024;

export interface DemoRecord {
  prefix: string;
  keeper: LabOwner;
  startedAt: string;
  daemon?: LabOwner;
  url?: string;
  api?: string;
  token?: string;
  uplinks?: string[];
}

export interface TrafficRecord extends LabOwner {
  rate: number;
  durationMs: number;
  startedAt: string;
}

/** One line of keeper.log. */
export type KeeperLine =
  | { at: string; progress: string }
  | { at: string; ready: { url: string; token: string; prefix: string } }
  | { at: string; error: string }
  | { at: string; warning: string };

/** Alive and not a zombie (a killed keeper stays one until its new parent reaps it). */
export function isRunning(owner: LabOwner | undefined): owner is LabOwner {
  if (!owner || !ownerIsAlive(owner)) return false;
  try {
    const stat = readFileSync(`/proc/${owner.pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export function ownerOf(pid: number): LabOwner {
  const startTime = processStartTime(pid);
  return startTime === undefined ? { pid } : { pid, startTime };
}

async function writeJson(file: string, value: unknown): Promise<void> {
  // Rename, so a reader never sees a half-written file.
  await writeFile(`${file}.tmp`, JSON.stringify(value, null, 2) + "\n", { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as unknown;
  } catch {
    return undefined;
  }
}

function isOwner(v: unknown): v is LabOwner {
  return typeof v === "object" && v !== null && Number.isInteger((v as LabOwner).pid);
}

export async function readDemoRecord(dir = DEMO_DIR): Promise<DemoRecord | undefined> {
  const v = (await readJson(join(dir, "demo.json"))) as Partial<DemoRecord> | undefined;
  if (!v || typeof v.prefix !== "string" || !isLabPrefix(v.prefix) || !isOwner(v.keeper)) return undefined;
  return v as DemoRecord;
}

export async function readTrafficRecord(dir = DEMO_DIR): Promise<TrafficRecord | undefined> {
  const v = await readJson(join(dir, "traffic.json"));
  return isOwner(v) ? (v as TrafficRecord) : undefined;
}

/** The last progress or summary line of the traffic generator, if any. */
export async function lastTrafficReport(dir = DEMO_DIR): Promise<TrafficReport | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, "traffic.log"), "utf8");
  } catch {
    return undefined;
  }
  const lines = text.trim().split("\n").reverse();
  for (const l of lines) {
    try {
      const v = JSON.parse(l) as TrafficReport;
      if (v.type === "progress" || v.type === "summary") return v;
    } catch {
      // not a report line
    }
  }
  return undefined;
}

/** A running demo's record, or undefined when none runs (a record whose keeper died does not count). */
export async function runningDemo(dir = DEMO_DIR): Promise<DemoRecord | undefined> {
  const rec = await readDemoRecord(dir);
  return rec && isRunning(rec.keeper) ? rec : undefined;
}

/**
 * The keeper's main: build the demo, report progress as JSON lines on stdout (keeper.log), then
 * hold it until SIGTERM/SIGINT.
 */
export async function runKeeper(dir: string): Promise<void> {
  const out = (line: Record<string, unknown>) =>
    process.stdout.write(JSON.stringify({ at: new Date().toISOString(), ...line }) + "\n");
  const lab = newDemoLab();
  const record: DemoRecord = {
    prefix: lab.prefix,
    keeper: ownerOf(process.pid),
    startedAt: new Date().toISOString(),
  };
  await writeJson(join(dir, "demo.json"), record);

  let demo: Demo | undefined;
  let stopping = false;
  const stop = async (why: string) => {
    if (stopping) return;
    stopping = true;
    out({ progress: `stopping (${why}): removing ${lab.prefix}*` });
    await (demo ? demo.destroy() : lab.destroy()).catch((e: unknown) => out({ error: String(e) }));
    out({ progress: "stopped" });
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGHUP", () => undefined);

  const daemonLog = cappedLog(join(dir, "nflb.log"), DAEMON_LOG_LIMIT);
  try {
    demo = await startDemo({
      lab,
      dir,
      onProgress: (m) => out({ progress: m }),
      onDaemonOutput: daemonLog,
    });
  } catch (e) {
    // startDemo removed what it had built; a SIGTERM during the build ends in stop() instead.
    if (stopping) return;
    out({ error: e instanceof Error ? e.message : String(e) });
    process.exit(1);
  }
  if (stopping) return;
  await writeJson(join(dir, "demo.json"), {
    ...record,
    daemon: ownerOf(demo.daemon.pid),
    url: demo.url,
    api: demo.api,
    token: demo.token,
    uplinks: demo.lab.uplinks.map((u) => `isp${u.index}`),
  } satisfies DemoRecord);
  out({ ready: { url: demo.url, token: demo.token, prefix: lab.prefix } });
  void demo.daemon.exited.then((code) => {
    if (!stopping)
      out({ warning: `nflb run exited ${code}; see nflb.log. The lab stays until nflb lab down.` });
  });
  // The lab's child processes are unref'd; this keeps the keeper alive until a signal.
  setInterval(() => undefined, 1 << 30);
}

function cappedLog(file: string, limit: number): (chunk: string) => void {
  const stream = createWriteStream(file, { flags: "a", mode: 0o600 });
  let written = 0;
  return (chunk) => {
    if (written >= limit) return;
    written += Buffer.byteLength(chunk);
    stream.write(written >= limit ? `${chunk}\n[log limit of ${limit} bytes reached]\n` : chunk);
  };
}

function signal(owner: LabOwner | undefined, sig: NodeJS.Signals): boolean {
  if (!isRunning(owner)) return false;
  try {
    process.kill(owner.pid, sig);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(owner: LabOwner, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isRunning(owner)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

/** TERM, then KILL after `graceMs`; by pid, and only while the pid is still the process we started. */
async function stopProcess(owner: LabOwner | undefined, graceMs: number): Promise<void> {
  if (!owner || !signal(owner, "SIGTERM")) return;
  if (!(await waitGone(owner, graceMs))) {
    signal(owner, "SIGKILL");
    await waitGone(owner, 2000);
  }
}

/**
 * Remove the demo: the traffic generator, the keeper (which removes the lab), then whatever a
 * crashed keeper left (daemon, namespaces, host link) and the demo's directory. False when there
 * was nothing to remove.
 */
export async function stopDemo(dir = DEMO_DIR, say: (m: string) => void = () => undefined): Promise<boolean> {
  const rec = await readDemoRecord(dir);
  const traffic = await readTrafficRecord(dir);
  if (!rec && !traffic) {
    await rm(dir, { recursive: true, force: true });
    return false;
  }
  if (isRunning(traffic)) say(`stopping the traffic generator (pid ${traffic.pid})`);
  await stopProcess(traffic, 1000);
  if (rec) {
    if (isRunning(rec.keeper))
      say(`stopping the demo (keeper pid ${rec.keeper.pid}, namespaces ${rec.prefix}*)`);
    await stopProcess(rec.keeper, 20_000);
    await stopProcess(rec.daemon, 2000);
    await destroyLabPrefix(rec.prefix);
  }
  await rm(dir, { recursive: true, force: true });
  return true;
}

/** Start (or restart) the detached traffic generator in the demo's LAN client. */
export async function startTraffic(
  rec: DemoRecord,
  o: { rate: number; durationMs: number },
  dir = DEMO_DIR,
): Promise<TrafficRecord> {
  await stopTraffic(dir);
  const argv = wrapNetns(
    trafficArgv({ targets: demoTrafficTargets(), rate: o.rate, durationMs: o.durationMs }),
    netnsName(rec.prefix, "lan"),
  );
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error("empty traffic command");
  const fd = openSync(join(dir, "traffic.log"), "w", 0o600);
  try {
    // `ip netns exec` execs in place: the pid is the generator's own.
    const child = spawn(cmd, args, { detached: true, stdio: ["ignore", fd, fd], cwd: "/" });
    if (child.pid === undefined) throw new Error(`failed to start ${argv.join(" ")}`);
    child.unref();
    const t: TrafficRecord = {
      ...ownerOf(child.pid),
      rate: o.rate,
      durationMs: o.durationMs,
      startedAt: new Date().toISOString(),
    };
    await writeJson(join(dir, "traffic.json"), t);
    return t;
  } finally {
    closeSync(fd);
  }
}

/** Stop the traffic generator if it runs; true when one was running. */
export async function stopTraffic(dir = DEMO_DIR): Promise<boolean> {
  const t = await readTrafficRecord(dir);
  const wasRunning = isRunning(t);
  await stopProcess(t, 3000);
  await rm(join(dir, "traffic.json"), { force: true });
  return wasRunning;
}

/** Cut (or mend) uplink `name`'s ISP upstream: the ISP keeps carrier but forwards nothing. */
export async function setUpstreamCut(rec: DemoRecord, name: string, cut: boolean): Promise<void> {
  const m = /^isp([1-8])$/.exec(name);
  if (!m || !(rec.uplinks ?? []).includes(name))
    throw new Error(`no uplink ${name} in the demo (${(rec.uplinks ?? []).join(", ")})`);
  await run(["nft", "-f", "-"], {
    netns: netnsName(rec.prefix, name),
    input: renderIspControl({ cut, loss: 0 }),
    timeoutMs: 10_000,
  });
}

/** Uplinks whose upstream is cut now (read back from the ISP namespaces). */
export async function cutUplinks(rec: DemoRecord): Promise<string[]> {
  const out: string[] = [];
  for (const name of rec.uplinks ?? []) {
    const text = await run(["nft", "list", "chain", "inet", ISP_TABLE, "control"], {
      netns: netnsName(rec.prefix, name),
      timeoutMs: 10_000,
    }).catch(() => "");
    if (/cut_dropped/.test(text)) out.push(name);
  }
  return out;
}

export async function ensureDemoDir(dir = DEMO_DIR): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}
