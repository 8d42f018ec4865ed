import { readFile } from "node:fs/promises";
import { isMap, isScalar, LineCounter, parseDocument } from "yaml";
import { configSchema, type Config } from "./schema.ts";
import { crossCheck } from "./cross-checks.ts";
import { ConfigError, locate, type ConfigIssue } from "./issues.ts";

export const DEFAULT_CONFIG_PATH = "/etc/nflb/nflb.yaml";

export interface LoadedConfig {
  config: Config;
  file: string;
  text: string;
  /** Attach YAML lines to issues found later (system checks). */
  locate: (issues: ConfigIssue[]) => ConfigIssue[];
}

/** Parse and validate config text. Pure: throws ConfigError listing every problem with its YAML line. */
export function parseConfig(text: string, file = "<config>"): Config {
  return parseConfigSource(text, file).config;
}

export function parseConfigSource(text: string, file = "<config>"): LoadedConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
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
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  const parsed = configSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issues: ConfigIssue[] = parsed.error.issues.map((i) => {
      const issue = {
        path: i.path.map((p) => (typeof p === "symbol" ? String(p) : p)),
        message:
          i.code === "unrecognized_keys"
            ? `unknown key${i.keys.length > 1 ? "s" : ""} ${i.keys.join(", ")}`
            : i.message,
      };
      return locateUnknown(doc, lc, issue, i.code === "unrecognized_keys" ? i.keys : undefined);
    });
    throw new ConfigError(file, issues);
  }
  const issues = crossCheck(parsed.data);
  const loc = (list: ConfigIssue[]) => list.map((i) => locate(doc, lc, i));
  if (issues.length > 0) throw new ConfigError(file, loc(issues));
  return { config: parsed.data, file, text, locate: loc };
}

// An unknown key is reported by zod on its parent mapping; point at the key itself, the line to fix.
function locateUnknown(
  doc: ReturnType<typeof parseDocument>,
  lc: LineCounter,
  issue: ConfigIssue,
  keys: string[] | undefined,
): ConfigIssue {
  const key = keys?.[0];
  const parent: unknown = key === undefined ? undefined : doc.getIn(issue.path, true);
  if (isMap(parent)) {
    const pair = parent.items.find((it) => isScalar(it.key) && it.key.value === key);
    if (pair && isScalar(pair.key) && pair.key.range) {
      const pos = lc.linePos(pair.key.range[0]);
      return { ...issue, path: [...issue.path, key as string], line: pos.line, col: pos.col };
    }
  }
  return locate(doc, lc, issue);
}

export async function loadConfig(file: string): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new ConfigError(file, [{ path: [], message: `cannot read: ${(e as Error).message}` }]);
  }
  return parseConfigSource(text, file);
}
