import { readFile } from "node:fs/promises";
import {
  isMap,
  isScalar,
  LineCounter,
  parseDocument,
  visit,
  YAMLParseError,
  type Document,
  type YAMLError,
} from "yaml";
import { configSchema, type Config } from "./schema.ts";
import { crossCheck } from "./cross-checks.ts";
import { MAX_CONFIG_BYTES, validRaw } from "./load-fast.ts";
import { ConfigError, locate, type ConfigIssue } from "./issues.ts";
import { explainIssue } from "./messages.ts";
import { redactUrlCredentials, SECRET_KEYS } from "./redact.ts";
import { didYouMean, keysAt } from "./suggest.ts";
import { configWarnings } from "./warnings.ts";
import { fastYaml } from "./yaml-fast.ts";
import { subsetYaml } from "./yaml-subset.ts";

export const DEFAULT_CONFIG_PATH = "/etc/nflb/nflb.yaml";

export { MAX_CONFIG_BYTES };
/** Aliases expand in place: a few nested ones make gigabytes ("billion laughs"). */
export const MAX_ALIASES = 100;

export interface LoadedConfig {
  config: Config;
  file: string;
  text: string;
  /** Attach YAML lines to issues found later (system checks). */
  locate: (issues: ConfigIssue[]) => ConfigIssue[];
}

/** A loaded config with what `check` prints besides errors: valid, but probably not meant. */
export interface CheckedConfig extends LoadedConfig {
  warnings: ConfigIssue[];
}

/** Parse and validate config text. Pure: throws ConfigError listing every problem with its YAML line. */
export function parseConfig(text: string, file = "<config>"): Config {
  return parseConfigSource(text, file).config;
}

export function parseConfigSource(text: string, file = "<config>"): CheckedConfig {
  if (Buffer.byteLength(text, "utf8") <= MAX_CONFIG_BYTES) {
    const fast = parseValidFast(text, file);
    if (fast) return fast;
  }
  return parseWithPositions(text, file);
}

/**
 * A valid config, read without YAML positions: by yaml-subset.ts when it is written in the plain
 * subset of YAML configs use (nearly always), else by yaml-fast.ts when it has long prefix lists;
 * its long lists validated by validate-fast.ts. Only when it is valid: anything to report (an
 * error, a warning, a later system check) needs lines, so it is read again with positions, then or
 * on first use.
 */
function parseValidFast(text: string, file: string): CheckedConfig | undefined {
  let raw = subsetYaml(text);
  // The subset has no `__proto__` key; the other reader may.
  if (raw === undefined) {
    raw = fastYaml(text, { maxAliasCount: MAX_ALIASES });
    if (raw === undefined || protoKeys(raw, []).length > 0) return undefined;
  }
  const config = validRaw(raw);
  if (!config) return undefined;
  let positions: ((list: ConfigIssue[]) => ConfigIssue[]) | undefined;
  const loc = (list: ConfigIssue[]) => (list.length === 0 ? list : (positions ??= positionsOf(text))(list));
  let warnings: ConfigIssue[] | undefined;
  return {
    config,
    file,
    text,
    locate: loc,
    // Only `check` prints them; `apply` and `run` should not pay for their lines.
    get warnings() {
      return (warnings ??= loc(configWarnings(config)));
    },
  };
}

/** Lines for issues of a config known to be valid: the positioned read alone, no validation again. */
function positionsOf(text: string): (list: ConfigIssue[]) => ConfigIssue[] {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false });
  return (list) => list.map((i) => locate(doc, lc, i));
}

function parseWithPositions(text: string, file: string): CheckedConfig {
  const fail = (issues: ConfigIssue[]) =>
    new ConfigError(
      file,
      issues.map((i) => ({ ...i, message: redactUrlCredentials(i.message) })),
    );
  if (Buffer.byteLength(text, "utf8") > MAX_CONFIG_BYTES)
    throw fail([
      {
        path: [],
        message: `the file is ${Buffer.byteLength(text, "utf8")} bytes; a config may have at most ${MAX_CONFIG_BYTES}`,
      },
    ]);
  const lc = new LineCounter();
  // yaml's own duplicate-key check compares every key of a mapping with every earlier one: 5,000
  // services took seconds. duplicateKeys finds the same in one pass.
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length === 0) doc.errors.push(...duplicateKeys(doc));
  if (doc.errors.length > 0) {
    throw fail(
      doc.errors.map((e) => {
        const pos = lc.linePos(e.pos[0]);
        return {
          path: [],
          message: `YAML syntax: ${e.message.split("\n")[0]}`,
          line: pos.line,
          col: pos.col,
        };
      }),
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (e) {
    // yaml throws a ReferenceError for an alias bomb (and for an alias to nothing).
    const msg = (e as Error).message;
    throw fail([
      {
        path: [],
        message: /alias count/i.test(msg)
          ? `YAML aliases expand to too much (more than ${MAX_ALIASES} uses of one anchor); write the values out`
          : `YAML: ${msg.split("\n")[0]}`,
      },
    ]);
  }
  // zod skips an own `__proto__` key without a word; it is never a key of the config.
  const proto = protoKeys(raw, []);
  if (proto.length > 0)
    throw fail(proto.map((path) => locate(doc, lc, { path, message: "unknown key __proto__: remove it" })));
  const parsed = configSchema.safeParse(raw ?? {}, { error: explainIssue, reportInput: true });
  if (!parsed.success) {
    const issues = parsed.error.issues.flatMap((i): ConfigIssue[] => {
      const path = i.path.map((p) => (typeof p === "symbol" ? String(p) : p));
      if (i.code === "unrecognized_keys")
        return i.keys.map((key) => locateUnknown(doc, lc, { path, message: unknownKey(path, key) }, key));
      const message = path.some((p) => typeof p === "string" && SECRET_KEYS.has(p))
        ? i.message.replace(/ \(got [^)]*\)/g, "")
        : i.message;
      return [locate(doc, lc, { path, message })];
    });
    throw fail(issues);
  }
  const loc = (list: ConfigIssue[]) => list.map((i) => locate(doc, lc, i));
  const issues = crossCheck(parsed.data);
  if (issues.length > 0) throw fail(loc(issues));
  return { config: parsed.data, file, text, locate: loc, warnings: loc(configWarnings(parsed.data)) };
}

/** A mapping's repeated scalar keys, as the errors yaml itself reports with `uniqueKeys: true`. */
function duplicateKeys(doc: Document): YAMLError[] {
  const out: YAMLError[] = [];
  visit(doc, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const k = isScalar(pair.key) ? pair.key.value : pair.key;
        if (!seen.has(k)) {
          seen.add(k);
          continue;
        }
        const at = isScalar(pair.key) && pair.key.range ? pair.key.range[0] : (map.range?.[0] ?? 0);
        out.push(new YAMLParseError([at, at + 1], "DUPLICATE_KEY", "Map keys must be unique"));
        if (out.length >= 10) return visit.BREAK;
      }
      return undefined;
    },
  });
  return out;
}

function protoKeys(v: unknown, path: (string | number)[]): (string | number)[][] {
  if (!v || typeof v !== "object") return [];
  const out: (string | number)[][] = [];
  if (Object.prototype.hasOwnProperty.call(v, "__proto__")) out.push([...path, "__proto__"]);
  if (Array.isArray(v)) {
    // Lists of scalars (10,000 prefixes) cost nothing to walk this way.
    for (let i = 0; i < v.length && out.length < 10; i++)
      if (v[i] && typeof v[i] === "object") out.push(...protoKeys(v[i], [...path, i]));
    return out;
  }
  for (const [k, child] of Object.entries(v)) {
    if (out.length >= 10) break;
    if (k !== "__proto__") out.push(...protoKeys(child, [...path, k]));
  }
  return out;
}

function unknownKey(path: (string | number)[], key: string): string {
  const allowed = keysAt(configSchema, path);
  const guess = didYouMean(key, allowed);
  if (guess) return `unknown key ${key}: did you mean ${guess}?`;
  return allowed.length > 0
    ? `unknown key ${key}: the keys here are ${allowed.join(", ")}`
    : `unknown key ${key}`;
}

// An unknown key is reported by zod on its parent mapping; point at the key itself, the line to fix.
function locateUnknown(doc: Document, lc: LineCounter, issue: ConfigIssue, key: string): ConfigIssue {
  const parent: unknown = doc.getIn(issue.path, true);
  if (isMap(parent)) {
    const pair = parent.items.find((it) => isScalar(it.key) && it.key.value === key);
    if (pair && isScalar(pair.key) && pair.key.range) {
      const pos = lc.linePos(pair.key.range[0]);
      return { ...issue, path: [...issue.path, key], line: pos.line, col: pos.col };
    }
  }
  return locate(doc, lc, { ...issue, path: [...issue.path, key] });
}

export async function loadConfig(file: string): Promise<CheckedConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new ConfigError(file, [{ path: [], message: `cannot read: ${(e as Error).message}` }]);
  }
  return parseConfigSource(text, file);
}
