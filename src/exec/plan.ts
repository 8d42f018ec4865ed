import type { Config } from "../config/schema.ts";
import { EXEC_MAP, pinChain, TABLE_REF } from "../nft/names.ts";

/**
 * `nflb exec --via UPLINK -- COMMAND`, the pure part: which chain the command's traffic is sent
 * to, the cgroup it runs in, and the nft lines that add and remove its map element.
 */
export const EXEC_CGROUP_PREFIX = "nflb-exec-";

export interface ExecPlan {
  uplink: string;
  /** The uplink's pin chain: sets the connection's and the packet's mark to the uplink's. */
  chain: string;
  /** The cgroup's name, directly below the hierarchy's root. */
  cgroup: string;
  /** Things the user should know before the command runs. */
  warnings: string[];
}

export function planExec(c: Config, via: string, pid: number): ExecPlan | { error: string } {
  const uplinks = c.uplinks ?? {};
  const u = uplinks[via];
  if (!u) {
    const names = Object.keys(uplinks);
    return {
      error: names.length
        ? `no uplink ${via} in the config (uplinks: ${names.join(", ")})`
        : "the config has no uplinks",
    };
  }
  const warnings: string[] = [];
  if (u.nat === "none")
    warnings.push(
      `${via} has nat: none, so packets keep the source address the kernel chose before nflb re-routed them; bind the command to ${u.interface}'s address if the far end must answer through ${via}`,
    );
  return { uplink: via, chain: pinChain(via), cgroup: execCgroupName(pid), warnings };
}

export function execCgroupName(pid: number): string {
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`bad pid ${pid}`);
  return `${EXEC_CGROUP_PREFIX}${pid}`;
}

/** The pid an exec cgroup was made for, or null for any other cgroup. */
export function execCgroupPid(name: string): number | null {
  const m = new RegExp(`^${EXEC_CGROUP_PREFIX}(\\d{1,10})$`).exec(name);
  return m ? Number(m[1]) : null;
}

/** Exec cgroups left behind by an `nflb exec` that was killed: their pid no longer runs. */
export function staleExecCgroups(names: readonly string[], alive: (pid: number) => boolean): string[] {
  return names.filter((n) => {
    const pid = execCgroupPid(n);
    return pid !== null && pid !== process.pid && !alive(pid);
  });
}

/** nft's name for a cgroup: its path below /sys/fs/cgroup, quoted. Names are checked, never user text. */
function cgroupKey(nftPrefix: string, cgroup: string): string {
  const path = `${nftPrefix}${cgroup}`;
  if (!/^[A-Za-z0-9._/-]+$/.test(path) || path.includes("..")) throw new Error(`unsafe cgroup path ${path}`);
  return JSON.stringify(path);
}

export function addElement(p: Pick<ExecPlan, "chain" | "cgroup">, nftPrefix: string): string {
  return `add element ${TABLE_REF} ${EXEC_MAP} { ${cgroupKey(nftPrefix, p.cgroup)} : goto ${p.chain} }\n`;
}

export function deleteElement(cgroup: string, nftPrefix: string): string {
  return `delete element ${TABLE_REF} ${EXEC_MAP} { ${cgroupKey(nftPrefix, cgroup)} }\n`;
}
