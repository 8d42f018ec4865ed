import { createHash } from "node:crypto";
import { readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import type { LoadedConfig } from "./load.ts";
import type { Config } from "./schema.ts";

/**
 * The validated config of a file validated before, by this very build: `nflb plan` then `nflb
 * apply`, or `apply` at every boot of the same file. Reading and validating a config loads the
 * YAML reader, zod and the schemas (~45 ms of module loading and schema building) and checks
 * every value (~15 ms for 10,000 prefixes); this reads one JSON file instead. This module imports
 * none of them (src/config/load.ts only on a miss).
 *
 * Only where the launcher points it (NFLB_CONFIG_CACHE, set by bin/nflb to nflb's own compile
 * cache: a checkout's dist/.compile-cache, emptied at each build, or /var/cache/nflb, root's), and
 * only in a bundle, whose build id (NFLB_BUILD_ID, defined by esbuild) is part of the key: a
 * config checked by another build, whose schema may differ (a new default), is checked again.
 * The key is the whole text: any change to the file, a byte, is a miss. Only valid configs
 * (parse, schema and cross-checks) are kept; the checks against this host run every time.
 */
declare const NFLB_BUILD_ID: string | undefined;

/** Set by esbuild's --define in bin/nflb's build; undefined under tsx (no cache). */
const BUILD = typeof NFLB_BUILD_ID === "string" ? NFLB_BUILD_ID : undefined;

const PREFIX = "config-";
const SUFFIX = ".json";

/** A config that came from the cache: its issues have no YAML lines until read with positions. */
export interface CachedConfig extends LoadedConfig {
  cached: true;
}

/** `where`: the directory and build id (a unit test's; by default the launcher's and the bundle's). */
export async function loadConfigCached(
  file: string,
  where: { dir?: string | undefined; build?: string | undefined } = {
    dir: process.env.NFLB_CONFIG_CACHE,
    build: BUILD,
  },
): Promise<LoadedConfig | CachedConfig> {
  const { dir, build } = where;
  if (!build || !dir?.startsWith("/")) return (await import("./load.ts")).loadConfig(file);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    // The same read again, for the error it words.
    return (await import("./load.ts")).loadConfig(file);
  }
  const key = createHash("sha256").update(build).update("\0").update(text).digest("hex");
  const path = `${dir}/${PREFIX}${key}${SUFFIX}`;
  const hit = await readFile(path, "utf8")
    .then((json) => JSON.parse(json) as Config | null)
    .catch(() => undefined);
  if (hit && typeof hit === "object")
    return { config: hit, file, text, locate: (issues) => issues, cached: true };
  const loaded = (await import("./load.ts")).parseConfigSource(text, file);
  // Before anyone holds the config: planning must not see a copy taken after a change.
  const json = JSON.stringify(loaded.config);
  await store(dir, path, json).catch(() => undefined);
  return loaded;
}

/** Written whole (a temp file renamed), readable by root only; the entries of other texts go. */
async function store(dir: string, path: string, json: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, json, { mode: 0o600 });
  await rename(tmp, path);
  const name = path.slice(dir.length + 1);
  for (const f of await readdir(dir))
    if (f !== name && f.startsWith(PREFIX)) await unlink(`${dir}/${f}`).catch(() => {});
}

/** The same config with its YAML lines, for issues found later (a check against this host). */
export async function withPositions(loaded: LoadedConfig | CachedConfig): Promise<LoadedConfig> {
  if (!("cached" in loaded)) return loaded;
  return (await import("./load.ts")).parseConfigSource(loaded.text, loaded.file);
}
