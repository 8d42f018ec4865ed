import type { Document, LineCounter } from "yaml";
import { isNode, isPair } from "yaml";

export type ConfigPath = (string | number)[];

export interface ConfigIssue {
  path: ConfigPath;
  message: string;
  line?: number;
  col?: number;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly issues: ConfigIssue[],
  ) {
    super(`${file}: invalid config\n${issues.map((i) => "  " + formatIssue(i)).join("\n")}`);
    this.name = "ConfigError";
  }
}

export function formatPath(path: ConfigPath): string {
  if (path.length === 0) return "(top level)";
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

export function formatIssue(i: ConfigIssue): string {
  const where = i.line ? ` (line ${i.line}${i.col ? `, column ${i.col}` : ""})` : "";
  return `${formatPath(i.path)}${where}: ${i.message}`;
}

/**
 * Attach the YAML line of the deepest node that exists along `path`: a missing key points at
 * its parent mapping, which is where the user has to add it.
 */
export function locate(doc: Document, lc: LineCounter, issue: ConfigIssue): ConfigIssue {
  for (let n = issue.path.length; n >= 0; n--) {
    const node: unknown = doc.getIn(issue.path.slice(0, n), true);
    const target = isPair(node) ? node.key : node;
    if (isNode(target) && target.range) {
      const pos = lc.linePos(target.range[0]);
      return { ...issue, line: pos.line, col: pos.col };
    }
  }
  return issue;
}
