import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";

/**
 * What nflb changed that the kernel cannot tell us back: original sysctl values and the ranges
 * it owns. One file per network namespace (keyed by its inode) so nodes in a lab never collide.
 */
export interface State {
  sysctls: Record<string, string>;
  tables: { from: number; to: number } | null;
  priorities: { from: number; to: number } | null;
  addresses: { iface: string; cidr: string }[];
  /** Link-layer multicast addresses nflb joined (`ip maddr add`), e.g. a cluster's shared MAC. */
  maddrs?: { iface: string; mac: string }[];
}

export const emptyState = (): State => ({ sysctls: {}, tables: null, priorities: null, addresses: [] });

async function statePath(): Promise<string> {
  const dir = process.env.NFLB_STATE_DIR ?? "/run/nflb";
  const ns = await stat("/proc/self/ns/net").then(
    (s) => s.ino,
    () => 0,
  );
  return `${dir}/netns-${ns}.json`;
}

export async function loadState(): Promise<State> {
  try {
    return { ...emptyState(), ...(JSON.parse(await readFile(await statePath(), "utf8")) as Partial<State>) };
  } catch {
    return emptyState();
  }
}

export async function saveState(s: State): Promise<void> {
  const p = await statePath();
  await mkdir(p.slice(0, p.lastIndexOf("/")), { recursive: true });
  await writeFile(p, JSON.stringify(s, null, 2) + "\n");
}

export async function clearState(): Promise<void> {
  await rm(await statePath(), { force: true });
}
