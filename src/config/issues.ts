import type { Document, LineCounter, Node } from "yaml";
import { isMap, isNode, isScalar, isSeq } from "yaml";

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
 * Attach the YAML line of the deepest node that exists along `path`: a wrong scalar's own
 * position, a mapping's or list's key line (not its first child's), and for a missing key its
 * parent's key, which is where it has to be added.
 */
export function locate(doc: Document, lc: LineCounter, issue: ConfigIssue): ConfigIssue {
  let node: unknown = doc.contents;
  let at: Node | undefined = isNode(node) ? node : undefined;
  let found = 0;
  for (const seg of issue.path) {
    if (isMap(node)) {
      const pair = node.items.find((it) => (isScalar(it.key) ? it.key.value : it.key) === seg);
      if (!pair) break;
      if (isNode(pair.key)) at = pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item: unknown = node.items[seg];
      if (!isNode(item)) break;
      at = item;
      node = item;
    } else break;
    found++;
  }
  // A wrong scalar: point at the value itself (same line as its key in block style).
  if (found === issue.path.length && isScalar(node) && node.range) at = node;
  if (at?.range) {
    const pos = lc.linePos(at.range[0]);
    return { ...issue, line: pos.line, col: pos.col };
  }
  return issue;
}
