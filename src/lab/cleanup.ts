import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { exec } from "../system/exec.ts";
import { LAB_RUN_DIR, hostLinkName, ownerFilePath, prefixOfNetns, prefixOfOwnerFile } from "./names.ts";
import { deleteNetns, isAlive, listNetns } from "./netns.ts";

export interface LabOwner {
  pid: number;
  /** Process start time in clock ticks (/proc/PID/stat field 22): tells a reused pid apart. */
  startTime?: number;
}

export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const value = Number(fields[19]);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function formatOwner(owner: LabOwner): string {
  return owner.startTime === undefined ? `${owner.pid}\n` : `${owner.pid} ${owner.startTime}\n`;
}

export function parseOwner(text: string): LabOwner | undefined {
  const m = /^\s*(\d+)(?:\s+(\d+))?\s*$/.exec(text);
  if (!m) return undefined;
  const owner: LabOwner = { pid: Number(m[1]) };
  if (m[2] !== undefined) owner.startTime = Number(m[2]);
  return owner;
}

export function ownerIsAlive(owner: LabOwner): boolean {
  if (!isAlive(owner.pid)) return false;
  if (owner.startTime === undefined) return true;
  const now = processStartTime(owner.pid);
  return now === undefined || now === owner.startTime;
}

/** Record `pid` as the owner of everything named with `prefix`. Written before anything is created. */
export async function writeOwnerFile(prefix: string, pid: number = process.pid): Promise<void> {
  await mkdir(LAB_RUN_DIR, { recursive: true, mode: 0o755 });
  // Rename so a concurrent cleanupStale never reads a half-written (and so "ownerless") file.
  const tmp = `${ownerFilePath(prefix)}.tmp`;
  await writeFile(tmp, formatOwner({ pid, startTime: processStartTime(pid) }));
  await rename(tmp, ownerFilePath(prefix));
}

export async function readOwnerFile(prefix: string): Promise<LabOwner | undefined> {
  try {
    return parseOwner(await readFile(ownerFilePath(prefix), "utf8"));
  } catch {
    return undefined;
  }
}

/** Remove every namespace, the host link and the owner file of one lab, whoever owns it. */
export async function destroyLabPrefix(prefix: string): Promise<void> {
  const names = (await listNetns()).filter((n) => prefixOfNetns(n) === prefix);
  await Promise.all(names.map((n) => deleteNetns(n)));
  // Deleting the router namespace takes the veth peer with it; this catches a half-built link.
  await exec(["ip", "link", "del", hostLinkName(prefix)], { timeoutMs: 5000 });
  await rm(ownerFilePath(prefix), { force: true });
}

/**
 * Tear down labs whose owner process is gone (a crashed or killed test run). Namespaces that
 * look like a lab's but have no owner file are orphans too: the owner file is written first.
 * Returns the prefixes removed.
 */
export async function cleanupStale(): Promise<string[]> {
  const prefixes = new Set<string>();
  for (const n of await listNetns()) {
    const p = prefixOfNetns(n);
    if (p) prefixes.add(p);
  }
  try {
    for (const f of await readdir(LAB_RUN_DIR)) {
      const p = prefixOfOwnerFile(f);
      if (p) prefixes.add(p);
    }
  } catch {
    // no run dir yet: nothing recorded
  }
  const stale: string[] = [];
  for (const p of prefixes) {
    const owner = await readOwnerFile(p);
    if (owner && ownerIsAlive(owner)) continue;
    stale.push(p);
  }
  await Promise.all(stale.map((p) => destroyLabPrefix(p)));
  return stale;
}

/**
 * Last resort when a lab or bench process exits without its destroy(): synchronous (an `exit`
 * handler cannot wait), best effort, processes by pid only.
 */
export function destroyLabSync(
  prefix: string,
  namespaces: Iterable<string>,
  procs: Iterable<{ child: { kill(signal: NodeJS.Signals): unknown } }>,
): void {
  for (const p of procs) p.child.kill("SIGKILL");
  for (const ns of namespaces) {
    const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout ?? "";
    for (const pid of pids.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // already gone
      }
    }
    spawnSync("ip", ["netns", "del", ns]);
  }
  spawnSync("ip", ["link", "del", hostLinkName(prefix)], { stdio: "ignore" });
  rmSync(ownerFilePath(prefix), { force: true });
}
