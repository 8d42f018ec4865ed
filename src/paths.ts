// Files of this checkout (dashboard assets, lab tools, the launcher), found the same way whether
// this module runs from src/ (tsx, tests) or inside the bundle bin/nflb builds (dist/nflb.mjs):
// `new URL("./x", import.meta.url)` would point into dist/ from the bundle.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
}

/** The checkout: the nearest directory above this module (or the bundle) holding package.json. */
export const REPO_ROOT = findRoot();

/** An absolute path inside the checkout, e.g. `repoPath("bin/nflb")`. */
export const repoPath = (rel: string): string => join(REPO_ROOT, rel);

/** An absolute path under src/, e.g. `srcPath("lab/tools/client.ts")`. */
export const srcPath = (rel: string): string => join(REPO_ROOT, "src", rel);

/** argv that runs a TypeScript file under src/ with Node + tsx (lab tools, helper processes). */
export function tsxArgv(rel: string, args: readonly string[] = []): string[] {
  return [process.execPath, "--import", import.meta.resolve("tsx"), srcPath(rel), ...args];
}
