// Files of this checkout (dashboard assets, lab tools, the launcher), found the same way whether
// this module runs from src/ (tsx, tests) or inside the bundle bin/nflb builds (dist/main.mjs and its chunks):
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

/** Inside the bundle, every helper process has its own built entry (bin/nflb's build lists them). */
const BUNDLED = /\/dist\/.+\.mjs$/.test(fileURLToPath(import.meta.url));

/** The built entry of a file under src/: `cli/main.ts` → dist/main.mjs, `lab/x.ts` → dist/lab/x.mjs. */
export const builtPath = (rel: string): string =>
  join(REPO_ROOT, "dist", rel === "cli/main.ts" ? "main.mjs" : rel.replace(/\.ts$/, ".mjs"));

/** True in the process started to run this file (from src/ through tsx, or its built entry). */
export const isEntry = (rel: string): boolean =>
  process.argv[1] === srcPath(rel) || process.argv[1] === builtPath(rel);

/**
 * argv that runs a TypeScript file under src/ (lab tools, helper processes): its built entry when
 * this code runs from the bundle (the installed package has no tsx), else the source with tsx.
 */
export function tsxArgv(rel: string, args: readonly string[] = []): string[] {
  const built = builtPath(rel);
  if (BUNDLED && existsSync(built)) return [process.execPath, built, ...args];
  return [process.execPath, "--import", import.meta.resolve("tsx"), srcPath(rel), ...args];
}
