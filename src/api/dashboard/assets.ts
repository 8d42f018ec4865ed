import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { srcPath } from "../../paths.ts";

const require = createRequire(import.meta.url);

/**
 * The dashboard's static files, by the name the page asks for (`/dashboard/NAME`). A fixed
 * list: nothing else on disk can be reached through this route. uPlot comes from its npm
 * package, so its version is the one package-lock.json pins.
 */
const ASSETS: Record<string, { file: () => string; type: string }> = {
  "app.js": { file: () => srcPath("api/dashboard/app.js"), type: "text/javascript; charset=utf-8" },
  "app.css": { file: () => srcPath("api/dashboard/app.css"), type: "text/css; charset=utf-8" },
  "uplot.js": {
    file: () => require.resolve("uplot/dist/uPlot.iife.min.js"),
    type: "text/javascript; charset=utf-8",
  },
  "uplot.css": { file: () => require.resolve("uplot/dist/uPlot.min.css"), type: "text/css; charset=utf-8" },
};

export async function dashboardAsset(name: string): Promise<{ type: string; body: Buffer } | null> {
  const a = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  if (!a) return null;
  return { type: a.type, body: await readFile(a.file()) };
}
