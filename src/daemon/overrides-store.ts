import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { emptyOverrides, type Overrides } from "./health-view.ts";

/**
 * The operator's overrides (disabled uplinks; drained, maint and re-weighted backends) on disk, so
 * a daemon restart keeps them. One small JSON file per network namespace, next to the state file
 * (NFLB_STATE_DIR, default /run/nflb), written to a temporary file and renamed into place.
 */
export interface StoredOverrides {
  version: 1;
  disabled_uplinks: string[];
  drained: Record<string, string[]>;
  maint: Record<string, string[]>;
  weights: Record<string, Record<string, number>>;
}

const MAX_NAMES = 10_000;
const MAX_NAME_LEN = 128;

export async function overridesPath(): Promise<string> {
  const dir = process.env.NFLB_STATE_DIR ?? "/run/nflb";
  const ns = await stat("/proc/self/ns/net").then(
    (s) => s.ino,
    () => 0,
  );
  return `${dir}/overrides-netns-${ns}.json`;
}

export function toStored(o: Overrides): StoredOverrides {
  const sets = (m: Map<string, Set<string>>) =>
    Object.fromEntries([...m].filter(([, s]) => s.size > 0).map(([k, s]) => [k, [...s].sort()]));
  return {
    version: 1,
    disabled_uplinks: [...o.disabledUplinks].sort(),
    drained: sets(o.drained),
    maint: sets(o.maint),
    weights: Object.fromEntries(
      [...o.weights].filter(([, m]) => m.size > 0).map(([k, m]) => [k, Object.fromEntries(m)]),
    ),
  };
}

const isName = (x: unknown): x is string => typeof x === "string" && x.length > 0 && x.length <= MAX_NAME_LEN;

/** Parse what the file holds; anything malformed is dropped (the file is a convenience, not a source of truth). */
export function fromStored(raw: unknown): Overrides {
  const o = emptyOverrides();
  if (!raw || typeof raw !== "object" || (raw as { version?: unknown }).version !== 1) return o;
  const r = raw as Record<string, unknown>;
  let n = 0;
  const room = () => ++n <= MAX_NAMES;
  if (Array.isArray(r.disabled_uplinks))
    for (const u of r.disabled_uplinks) if (isName(u) && room()) o.disabledUplinks.add(u);
  for (const [key, target] of [
    ["drained", o.drained],
    ["maint", o.maint],
  ] as const) {
    const rec = r[key];
    if (!rec || typeof rec !== "object" || Array.isArray(rec)) continue;
    for (const [svc, list] of Object.entries(rec as Record<string, unknown>)) {
      if (!isName(svc) || !Array.isArray(list)) continue;
      const set = new Set(list.filter((b): b is string => isName(b) && room()));
      if (set.size) target.set(svc, set);
    }
  }
  const w = r.weights;
  if (w && typeof w === "object" && !Array.isArray(w))
    for (const [svc, rec] of Object.entries(w as Record<string, unknown>)) {
      if (!isName(svc) || !rec || typeof rec !== "object" || Array.isArray(rec)) continue;
      const m = new Map<string, number>();
      for (const [b, v] of Object.entries(rec as Record<string, unknown>))
        if (isName(b) && Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 10_000 && room())
          m.set(b, v as number);
      if (m.size) o.weights.set(svc, m);
    }
  return o;
}

export async function loadOverrides(file: string): Promise<Overrides> {
  try {
    return fromStored(JSON.parse(await readFile(file, "utf8")));
  } catch {
    return emptyOverrides();
  }
}

/** Write atomically: a crash mid-write leaves the previous file, never half of one. */
export async function saveOverrides(file: string, o: Overrides): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, JSON.stringify(toStored(o), null, 2) + "\n", { mode: 0o600 });
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
