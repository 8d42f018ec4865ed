import { spawn } from "node:child_process";
import { constants } from "node:os";
import type { Config } from "../config/schema.ts";
import { EXEC_MAP } from "../nft/names.ts";
import {
  createCgroup,
  moveProcess,
  openCgroup2,
  ownDir,
  populated,
  release,
  removeCgroup,
  topLevel,
  type Cgroup2,
} from "../system/cgroup.ts";
import { acquireStateLock } from "../system/lock.ts";
import { listJson, nftApply } from "../system/nft.ts";
import { addElement, deleteElement, planExec, staleExecCgroups } from "./plan.ts";

/**
 * `nflb exec --via UPLINK -- COMMAND`: run one command whose traffic leaves by that uplink.
 *
 * The command runs in a transient cgroup `nflb-exec-PID`; an element of the `exec_via` map sends
 * its sockets' packets to the uplink's pin chain. nflb moves itself into the cgroup, starts the
 * command (which inherits it, from its first instruction on), and moves itself back out. When the
 * command ends, on any exit path, the element is deleted, anything the command left running in
 * the cgroup is killed, and the cgroup removed. A killed `nflb exec` is cleaned up by the next one.
 */
export class ExecViaError extends Error {
  override name = "ExecViaError";
}

export interface ExecViaOptions {
  config: Config;
  via: string;
  argv: readonly string[];
  /** Messages for the user (stderr). */
  say: (line: string) => void;
}

/** How often the element is re-added, in case a full re-apply of the table (a reload) dropped it. */
const REFRESH_MS = 2000;
const RELAYED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const;

export async function execVia(o: ExecViaOptions): Promise<number> {
  // The state lock while it sets up (stale runs removed, its element added), not while the command
  // runs: several `nflb exec` may run at once. Beside the daemon it is a guest (the daemon's
  // reloads drop the element; the refresh re-adds it).
  const lock = await acquireStateLock("nflb exec", { guestOfDaemon: true });
  try {
    return await execViaLocked(o, async () => lock?.release());
  } finally {
    await lock?.release();
  }
}

async function execViaLocked(o: ExecViaOptions, setUp: () => Promise<void>): Promise<number> {
  const [cmd, ...args] = o.argv;
  if (!cmd) throw new ExecViaError("no command given (nflb exec --via UPLINK -- COMMAND [ARGS…])");
  const plan = planExec(o.config, o.via, process.pid);
  if ("error" in plan) throw new ExecViaError(plan.error);
  for (const w of plan.warnings) o.say(`warning: ${w}`);

  if ((await listJson(["map", "inet", "nflb", EXEC_MAP])).length === 0)
    throw new ExecViaError(
      "nflb's data plane is not installed (no map inet nflb exec_via): run `nflb apply` or `nflb run` first, as root",
    );
  const cg = await openCgroup2().catch((e: Error) => {
    throw new ExecViaError(e.message);
  });
  await removeStale(cg);

  const dir = await createCgroup(cg, plan.cgroup).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code !== "EEXIST") throw e;
    await removeCgroup(`${cg.mountPoint}/${plan.cgroup}`);
    return createCgroup(cg, plan.cgroup);
  });
  let movedIn = false;
  let refresh: NodeJS.Timeout | undefined;
  const relays: [string, () => void][] = [];
  const cleanup = async () => {
    clearInterval(refresh);
    for (const [sig, fn] of relays) process.off(sig, fn);
    await nftApply(deleteElement(plan.cgroup, cg.nftPrefix)).catch(() => undefined);
    if (movedIn) await moveProcess(ownDir(cg), process.pid).catch(() => undefined);
    if (!(await removeCgroup(dir))) o.say(`warning: could not remove the cgroup ${dir}`);
    await release(cg);
  };

  // Taken over before anything is spawned: a signal that arrives while the command starts is
  // passed on to it as soon as it exists, instead of killing nflb before it could clean up.
  let child: ReturnType<typeof spawn> | undefined;
  const pending: NodeJS.Signals[] = [];
  for (const sig of RELAYED) {
    const fn = () => void (child ? child.kill(sig) : pending.push(sig));
    relays.push([sig, fn]);
    process.on(sig, fn);
  }

  try {
    const add = addElement(plan, cg.nftPrefix);
    await nftApply(add);
    await setUp();
    await moveProcess(dir, process.pid);
    movedIn = true;
    const started = spawn(cmd, args, { stdio: "inherit" });
    child = started;
    // Listen at once: a command that cannot start reports it on the next tick.
    const exited = new Promise<number>((resolve) => {
      started.once("error", (e: NodeJS.ErrnoException) => {
        o.say(`cannot run ${cmd}: ${e.code === "ENOENT" ? "command not found" : e.message}`);
        resolve(e.code === "ENOENT" ? 127 : 126);
      });
      started.once("exit", (code, signal) =>
        resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)),
      );
    });
    // The child was forked inside the cgroup; nflb itself need not stay.
    await moveProcess(ownDir(cg), process.pid);
    movedIn = false;
    for (const sig of pending.splice(0)) started.kill(sig);
    refresh = setInterval(() => void nftApply(add).catch(() => undefined), REFRESH_MS);
    return await exited;
  } finally {
    await cleanup();
  }
}

/** Cgroups and elements of `nflb exec` runs that were killed before they could clean up, once empty. */
async function removeStale(cg: Cgroup2): Promise<void> {
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code !== "ESRCH";
    }
  };
  for (const name of staleExecCgroups(await topLevel(cg), alive)) {
    // Its command may still run (only nflb was killed): leave it be until it ends.
    if (await populated(`${cg.mountPoint}/${name}`)) continue;
    await nftApply(deleteElement(name, cg.nftPrefix)).catch(() => undefined);
    await removeCgroup(`${cg.mountPoint}/${name}`);
  }
}
