import { exec, run } from "../system/exec.ts";

const IP_TIMEOUT_MS = 10_000;

export async function listNetns(): Promise<string[]> {
  const out = await run(["ip", "-j", "netns", "list"], { timeoutMs: IP_TIMEOUT_MS });
  // Defensive: some iproute2 versions print nothing rather than `[]` when there are none.
  if (!out.trim()) return [];
  const parsed = JSON.parse(out) as { name: string }[];
  return parsed.map((n) => n.name);
}

export async function addNetns(name: string): Promise<void> {
  await run(["ip", "netns", "add", name], { timeoutMs: IP_TIMEOUT_MS });
  // Loopback starts down in a new namespace; servers bound to lo addresses need it.
  await run(["ip", "-n", name, "link", "set", "lo", "up"], { timeoutMs: IP_TIMEOUT_MS });
}

/**
 * Many `ip` commands in one process. Not atomic (lines before a failing one stay applied),
 * which is fine here: a half-built lab is torn down as a whole.
 */
export async function ipBatch(netns: string | undefined, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  const argv = netns ? ["ip", "-n", netns, "-batch", "-"] : ["ip", "-batch", "-"];
  await run(argv, { input: lines.join("\n") + "\n", timeoutMs: IP_TIMEOUT_MS });
}

export async function netnsPids(name: string): Promise<number[]> {
  const r = await exec(["ip", "netns", "pids", name], { timeoutMs: IP_TIMEOUT_MS });
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM means it exists but belongs to someone else: still alive.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** SIGKILL every process inside the namespace, by pid, and wait (bounded) until they are gone. */
export async function killNetnsProcesses(name: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const pids = (await netnsPids(name)).filter((p) => p !== process.pid);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await sleep(50);
  }
}

/** Kill its processes, then delete. Missing namespaces are not an error (idempotent teardown). */
export async function deleteNetns(name: string): Promise<void> {
  if (!(await listNetns()).includes(name)) return;
  await killNetnsProcesses(name);
  const r = await exec(["ip", "netns", "del", name], { timeoutMs: IP_TIMEOUT_MS });
  if (r.code !== 0 && (await listNetns()).includes(name)) {
    throw new Error(`ip netns del ${name}: ${r.stderr.trim()}`);
  }
}

/** Why lab tests cannot run here, or undefined when they can. */
export async function labUnavailableReason(): Promise<string | undefined> {
  if (process.platform !== "linux") return "network namespaces need Linux";
  if (process.getuid?.() !== 0) return "lab tests need root (network namespaces, veth, nft)";
  try {
    const r = await exec(["ip", "netns", "list"], { timeoutMs: 5000 });
    if (r.code !== 0) return `ip netns unavailable: ${r.stderr.trim()}`;
    const n = await exec(["nft", "--version"], { timeoutMs: 5000 });
    if (n.code !== 0) return "nft unavailable";
  } catch (err) {
    return `iproute2/nft not found: ${(err as Error).message}`;
  }
  return undefined;
}
