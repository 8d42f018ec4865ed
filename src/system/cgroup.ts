import { mkdir, readdir, readFile, readlink, rmdir, stat, writeFile } from "node:fs/promises";
import { run } from "./exec.ts";

/**
 * The cgroup v2 hierarchy, for `nflb exec`: the only module that mounts it or moves processes.
 *
 * nft names a cgroup by its path below /sys/fs/cgroup, so the v2 hierarchy must be reachable
 * there: at /sys/fs/cgroup itself (pure v2 hosts) or below it (/sys/fs/cgroup/unified on hybrid
 * hosts). `ip netns exec` mounts a fresh sysfs, which hides it; only in such a private mount
 * namespace does nflb mount cgroup2 at /sys/fs/cgroup itself.
 */
export const SYS_CGROUP = "/sys/fs/cgroup";
/** The initial cgroup namespace's inode (PROC_CGROUP_INIT_INO): there, levels are absolute. */
const INIT_CGROUP_NS = "cgroup:[4026531835]";

export interface Cgroup2 {
  /** Where the v2 hierarchy is mounted. */
  mountPoint: string;
  /** How nft names a cgroup below it: the mount point relative to /sys/fs/cgroup, with a slash ("" or "unified/"). */
  nftPrefix: string;
  /** This process's cgroup, relative to the hierarchy's root ("/" or "/user.slice/…"). */
  own: string;
  /** nflb mounted it (and unmounts it with `release`). */
  mounted: boolean;
}

export class CgroupError extends Error {
  override name = "CgroupError";
}

/** cgroup2 mount points, from /proc/self/mountinfo. */
export async function cgroup2Mounts(): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const [pre, post] = line.split(" - ");
    if (!pre || !post) continue;
    if (post.split(" ")[0] === "cgroup2") {
      const mp = pre.split(" ")[4];
      if (mp) out.push(mp.replace(/\\040/g, " "));
    }
  }
  return out;
}

async function privateMountNamespace(): Promise<boolean> {
  const mine = await readlink("/proc/self/ns/mnt").catch(() => null);
  const parent = await readlink(`/proc/${process.ppid}/ns/mnt`).catch(() => null);
  return mine !== null && parent !== null && mine !== parent;
}

/** Find (or, in a private mount namespace, mount) the v2 hierarchy where nft can name its cgroups. */
export async function openCgroup2(): Promise<Cgroup2> {
  const ns = await readlink("/proc/self/ns/cgroup").catch(() => null);
  if (ns !== INIT_CGROUP_NS)
    throw new CgroupError(
      "nflb exec needs the host's cgroup namespace (inside another, cgroup levels are unknown)",
    );
  const own = (await readFile("/proc/self/cgroup", "utf8")).match(/^0::(.*)$/m)?.[1] ?? "/";
  const mounts = await cgroup2Mounts();
  const usable = mounts.find((m) => m === SYS_CGROUP || m.startsWith(`${SYS_CGROUP}/`));
  if (usable) {
    const rel = usable.slice(SYS_CGROUP.length).replace(/^\//, "");
    return { mountPoint: usable, nftPrefix: rel ? `${rel}/` : "", own, mounted: false };
  }
  const entries = await readdir(SYS_CGROUP).catch(() => null);
  if (entries && entries.length === 0 && (await privateMountNamespace())) {
    await run(["mount", "-t", "cgroup2", "cgroup2", SYS_CGROUP], { timeoutMs: 10_000 });
    return { mountPoint: SYS_CGROUP, nftPrefix: "", own, mounted: true };
  }
  throw new CgroupError(
    `no cgroup v2 hierarchy at or below ${SYS_CGROUP}${mounts.length ? ` (mounted at ${mounts.join(", ")})` : ""}`,
  );
}

export async function release(cg: Cgroup2): Promise<void> {
  if (cg.mounted) await run(["umount", cg.mountPoint], { timeoutMs: 10_000 }).catch(() => undefined);
}

/** Names of the cgroups directly below the root. */
export async function topLevel(cg: Cgroup2): Promise<string[]> {
  const entries = await readdir(cg.mountPoint, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory()).map((e) => e.name);
}

export async function createCgroup(cg: Cgroup2, name: string): Promise<string> {
  const dir = `${cg.mountPoint}/${name}`;
  await mkdir(dir);
  return dir;
}

/** Move a whole process (every thread) into the cgroup at `dir`. */
export async function moveProcess(dir: string, pid: number): Promise<void> {
  await writeFile(`${dir}/cgroup.procs`, `${pid}\n`);
}

/** The directory of this process's own cgroup, to come back to. */
export function ownDir(cg: Cgroup2): string {
  return cg.own === "/" ? cg.mountPoint : `${cg.mountPoint}${cg.own}`;
}

export async function populated(dir: string): Promise<boolean> {
  const events = await readFile(`${dir}/cgroup.events`, "utf8").catch(() => "populated 0");
  return /^populated 1$/m.test(events);
}

/**
 * Kill whatever is left in the cgroup (cgroup.kill, Linux ≥ 5.14), wait until it is empty
 * (bounded), and remove it. False when it could not be removed in time.
 */
export async function removeCgroup(dir: string, timeoutMs = 3000): Promise<boolean> {
  const exists = await stat(dir).then(
    () => true,
    () => false,
  );
  if (!exists) return true;
  if (await populated(dir)) await writeFile(`${dir}/cgroup.kill`, "1\n").catch(() => undefined);
  const until = Date.now() + timeoutMs;
  while ((await populated(dir)) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  return rmdir(dir).then(
    () => true,
    () => false,
  );
}
