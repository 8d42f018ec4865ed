import { existsSync } from "node:fs";
import { open, mkdir, readFile, readdir, rename, rm, stat, unlink } from "node:fs/promises";

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
  /**
   * Each uplink's slot (mark, table, rule priority; src/plan/uplink-ids.ts), by name: the next
   * apply or start keeps them whatever the config's order. Version 2; absent in version 1.
   */
  uplinkSlots?: Record<string, number>;
}

/**
 * The format this nflb writes. A file without `version` was written before versions existed and
 * has the same fields as version 1; version 2 adds `uplinkSlots`. A newer version may mean something this nflb would undo wrongly,
 * so it is refused rather than guessed at.
 */
export const STATE_VERSION = 2;

/** As the config's names (src/config/schema.ts); never a property every object has (`__proto__`). */
const UPLINK_NAME = /^[a-z][a-z0-9_-]{0,30}$/;

export class StateFileError extends Error {
  override name = "StateFileError";
}

export const emptyState = (): State => ({ sysctls: {}, tables: null, priorities: null, addresses: [] });

export function stateDir(): string {
  return process.env.NFLB_STATE_DIR ?? "/run/nflb";
}

/** This network namespace's state file. */
export async function stateFilePath(): Promise<string> {
  const ns = await stat("/proc/self/ns/net").then(
    (s) => s.ino,
    () => 0,
  );
  return `${stateDir()}/netns-${ns}.json`;
}

const isRange = (v: unknown): v is { from: number; to: number } =>
  typeof v === "object" &&
  v !== null &&
  Number.isInteger((v as { from: unknown }).from) &&
  Number.isInteger((v as { to: unknown }).to);

const isStrings = (v: unknown, keys: string[]): boolean =>
  typeof v === "object" &&
  v !== null &&
  keys.every((k) => typeof (v as Record<string, unknown>)[k] === "string");

/** A state file's text, checked: a file nflb cannot fully understand is an error, never "nothing". */
export function parseState(text: string, file: string): State {
  const bad = (why: string) =>
    new StateFileError(
      `state file ${file} ${why}. It records what nflb changed (sysctls, owned tables and rules), so nflb ` +
        "will not guess: inspect it, and remove it if it is garbage (nflb down then falls back to the " +
        "config's ranges)",
    );
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw bad(`is not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw bad("is not a JSON object");
  const o = raw as Record<string, unknown>;
  const version = o.version ?? 1;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1)
    throw bad(`has a bad version ${JSON.stringify(version)}`);
  if (version > STATE_VERSION)
    throw new StateFileError(
      `state file ${file} has version ${version}; this nflb understands up to ${STATE_VERSION} ` +
        "(a newer nflb wrote it: use that nflb, e.g. for nflb down)",
    );
  const s = emptyState();
  if (o.sysctls !== undefined) {
    if (typeof o.sysctls !== "object" || o.sysctls === null || Array.isArray(o.sysctls))
      throw bad("has a bad sysctls entry");
    for (const [k, v] of Object.entries(o.sysctls)) {
      if (typeof v !== "string") throw bad(`has a bad value for sysctl ${k}`);
      s.sysctls[k] = v;
    }
  }
  for (const key of ["tables", "priorities"] as const) {
    const v = o[key];
    if (v === undefined || v === null) continue;
    if (!isRange(v)) throw bad(`has a bad ${key} range`);
    s[key] = { from: v.from, to: v.to };
  }
  if (o.addresses !== undefined) {
    if (!Array.isArray(o.addresses) || !o.addresses.every((a) => isStrings(a, ["iface", "cidr"])))
      throw bad("has a bad addresses list");
    s.addresses = (o.addresses as State["addresses"]).map((a) => ({ iface: a.iface, cidr: a.cidr }));
  }
  if (o.maddrs !== undefined) {
    if (!Array.isArray(o.maddrs) || !o.maddrs.every((a) => isStrings(a, ["iface", "mac"])))
      throw bad("has a bad maddrs list");
    s.maddrs = (o.maddrs as NonNullable<State["maddrs"]>).map((a) => ({ iface: a.iface, mac: a.mac }));
  }
  if (o.uplinkSlots !== undefined) {
    const v = o.uplinkSlots;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw bad("has a bad uplinkSlots entry");
    s.uplinkSlots = {};
    for (const [k, n] of Object.entries(v)) {
      if (!UPLINK_NAME.test(k) || !Number.isInteger(n) || (n as number) < 1 || (n as number) > 0xffff)
        throw bad(`has a bad slot for uplink ${JSON.stringify(k)}`);
      s.uplinkSlots[k] = n as number;
    }
  }
  return s;
}

/** The recorded state; empty when there is no file. An unreadable or newer file throws. */
export async function loadState(): Promise<State> {
  const p = await stateFilePath();
  let text: string;
  try {
    text = await readFile(p, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return emptyState();
    throw new StateFileError(`state file ${p} cannot be read: ${(e as Error).message}`);
  }
  return parseState(text, p);
}

/**
 * Written whole or not at all: a temp file, flushed to disk, renamed over the old one (and the
 * directory flushed), so a crash or kill -9 at any point leaves the old file or the new one.
 */
export async function saveState(s: State): Promise<void> {
  const p = await stateFilePath();
  const dir = p.slice(0, p.lastIndexOf("/"));
  await mkdir(dir, { recursive: true });
  const text = JSON.stringify({ version: STATE_VERSION, ...s }, null, 2) + "\n";
  // The same state again (`nflb apply` with nothing to change): it is on disk already, and the
  // two fsyncs below cost milliseconds on a disk (/run is one on some hosts).
  if ((await readFile(p, "utf8").catch(() => null)) === text)
    return removeLeftovers(dir, `${p.slice(dir.length + 1)}.`);
  const tmp = `${p}.${process.pid}.tmp`;
  const f = await open(tmp, "w", 0o644);
  try {
    await f.writeFile(text);
    await f.sync();
  } catch (e) {
    await f.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await f.close();
  await rename(tmp, p);
  await removeLeftovers(dir, `${p.slice(dir.length + 1)}.`);
  // The rename itself survives a power cut only once the directory is on disk too.
  const d = await open(dir, "r").catch(() => null);
  if (d)
    await d
      .sync()
      .catch(() => undefined)
      .finally(() => void d.close());
}

export async function clearState(): Promise<void> {
  await rm(await stateFilePath(), { force: true });
}

/**
 * Temp files (`PREFIX.PID….tmp`) of writers killed before their rename (kill -9): only those
 * whose process is gone, so a writer in flight keeps its own.
 */
export async function removeLeftovers(dir: string, prefix: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names) {
    if (!n.startsWith(prefix) || !n.endsWith(".tmp")) continue;
    const pid = Number(/^(\d+)\./.exec(n.slice(prefix.length))?.[1]);
    if (!pid || pid === process.pid || existsSync(`/proc/${pid}`)) continue;
    await unlink(`${dir}/${n}`).catch(() => undefined);
  }
}
