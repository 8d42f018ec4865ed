import { readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import type { LoadedConfig } from "./load.ts";
import { SECRET_KEYS } from "./redact.ts";
import type { Config } from "./schema.ts";

/**
 * The validated config of a file validated before, by this very build: `nflb plan` then `nflb
 * apply`, or `apply` at every boot of the same file. Reading and validating a config loads the
 * YAML reader, zod and the schemas (~45 ms of module loading and schema building) and checks
 * every value (~15 ms for 10,000 prefixes); this reads one JSON file instead. This module imports
 * none of them: a miss reads the config with load-fast.ts (no YAML positions, no `yaml` package),
 * and with load.ts only when there is something to report or the YAML is outside the plain subset.
 *
 * Only where the launcher points it (NFLB_CONFIG_CACHE, set by bin/nflb to nflb's own compile
 * cache: a checkout's dist/.compile-cache, emptied at each build, or /var/cache/nflb, root's), and
 * only in a bundle, whose build id (NFLB_BUILD_ID, defined by esbuild) is part of the key: a
 * config checked by another build, whose schema may differ (a new default), is checked again.
 * The key is the whole text: the entry holds it and a hit is the same text, byte for byte; any
 * change to the file is a miss. (No hash of it: node:crypto alone takes 5–8 ms to load, on
 * every `plan` and `apply`; comparing 234 KiB of text takes microseconds.) Only valid configs
 * (parse, schema and cross-checks) without secrets (holdsSecret) are kept; the checks against this
 * host run every time.
 */
declare const NFLB_BUILD_ID: string | undefined;

/** Set by esbuild's --define in bin/nflb's build; undefined under tsx (no cache). */
const BUILD = typeof NFLB_BUILD_ID === "string" ? NFLB_BUILD_ID : undefined;

const PREFIX = "config-";
/** One entry, the last text's: its build id, the text's length, the text, the config as JSON. */
const ENTRY = `${PREFIX}last`;

/** The store of the last miss, running after loadConfigCached returned. */
let storing: Promise<void> = Promise.resolve();

/** Resolves once the entry of the last miss is written (or dropped). */
export function cacheSettled(): Promise<void> {
  return storing;
}

/**
 * A valid config read without YAML positions (from the cache, or by load-fast.ts): its `locate`
 * leaves issues as they are; withPositions reads it again with lines when there is one to report.
 */
export interface PositionlessConfig extends LoadedConfig {
  positionless: true;
}

/** A config that came from the cache. */
export interface CachedConfig extends PositionlessConfig {
  cached: true;
}

/**
 * `where`: the directory and build id (a unit test's; by default the launcher's and the bundle's).
 * Without them no cache, but the same reading: the fast one, load.ts only for a config with
 * anything to report or outside the plain subset of YAML.
 */
export async function loadConfigCached(
  file: string,
  where: { dir?: string | undefined; build?: string | undefined } = {
    dir: process.env.NFLB_CONFIG_CACHE,
    build: BUILD,
  },
): Promise<LoadedConfig | PositionlessConfig | CachedConfig> {
  const { dir, build } = where;
  // The entry this process is still writing (one `plan` or `apply` reads one config; a test, more).
  await storing;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    // The same read again, for the error it words.
    return (await import("./load.ts")).loadConfig(file);
  }
  const cache = build && dir?.startsWith("/") ? { dir, path: `${dir}/${ENTRY}`, build } : undefined;
  if (cache) {
    const hit = await readFile(cache.path, "utf8")
      .then((entry) => entryConfig(entry, build as string, text))
      .catch(() => undefined);
    if (hit && typeof hit === "object")
      return { config: hit, file, text, locate: (issues) => issues, positionless: true, cached: true };
  }
  const fast = (await import("./load-fast.ts")).parseSubsetValid(text);
  const loaded: LoadedConfig | PositionlessConfig = fast
    ? { config: fast, file, text, locate: (issues) => issues, positionless: true }
    : (await import("./load.ts")).parseConfigSource(text, file);
  if (cache) {
    // Before anyone holds the config: planning must not see a copy taken after a change. A config
    // with a secret in it (an inline api.token, a password in a URL) is not copied: it is read
    // again at every run instead, and no earlier entry is left either.
    // The entry holds the text too: nor is a text with one in a comment.
    // Only the copy is taken now; the text's check and the file's writing (5–8 ms of a miss,
    // mostly waits on the file system) happen while the caller plans and applies (a CLI process
    // ends once they are done; cut short by an exit, they leave a temp file the next store removes).
    const json = holdsSecret(loaded.config) ? undefined : JSON.stringify(loaded.config);
    storing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      const keep = json !== undefined && !SECRET_TEXT.test(text);
      const entry = keep ? `${cache.build}\n${text.length}\n${text}${json}` : undefined;
      return store(cache.dir, cache.path, entry).catch(() => undefined);
    });
  }
  return loaded;
}

/** The config an entry holds when it was written by this build for this very text; else undefined. */
export function entryConfig(entry: string, build: string, text: string): Config | undefined {
  const head = `${build}\n${text.length}\n`;
  if (!entry.startsWith(head) || !entry.startsWith(text, head.length)) return undefined;
  const config = JSON.parse(entry.slice(head.length + text.length)) as unknown;
  return config && typeof config === "object" ? (config as Config) : undefined;
}

/**
 * Whether a config holds a value that must not be copied to disk: one under a secret's key (the
 * API token, a password, a key), or a URL with credentials (`http://user:secret@host`).
 */
export function holdsSecret(v: unknown, key?: string): boolean {
  if (typeof v === "string") return (key !== undefined && SECRET_KEYS.has(key)) || URL_CREDENTIALS.test(v);
  if (Array.isArray(v)) return v.some((item) => holdsSecret(item));
  if (v && typeof v === "object") return Object.entries(v).some(([k, child]) => holdsSecret(child, k));
  return false;
}

/** A scheme, then user-info before an `@`: the same shape redactUrlCredentials hides. */
const URL_CREDENTIALS = /\b[a-z][a-z0-9+.-]*:\/\/[^\s/?#@"']*@/i;

/**
 * A secret's key with a value anywhere in a text (`token: x`, a commented-out one included), or
 * credentials in a URL.
 */
const SECRET_TEXT = new RegExp(
  `\\b(?:${[...SECRET_KEYS].join("|")})\\s*:\\s*[^\\s#]|${URL_CREDENTIALS.source}`,
  "i",
);

/**
 * Written whole (a temp file renamed), readable by root only; the entries of other texts or
 * earlier formats go (all of them when `entry` is undefined: nothing is kept for this text).
 */
async function store(dir: string, path: string, entry: string | undefined): Promise<void> {
  if (entry !== undefined) {
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, entry, { mode: 0o600 });
    await rename(tmp, path);
  }
  const name = entry === undefined ? undefined : path.slice(dir.length + 1);
  for (const f of await readdir(dir))
    if (f !== name && f.startsWith(PREFIX)) await unlink(`${dir}/${f}`).catch(() => {});
}

/** The same config with its YAML lines, for issues found later (a check against this host). */
export async function withPositions(
  loaded: LoadedConfig | PositionlessConfig | CachedConfig,
): Promise<LoadedConfig> {
  if (!("positionless" in loaded)) return loaded;
  return (await import("./load.ts")).parseConfigSource(loaded.text, loaded.file);
}
