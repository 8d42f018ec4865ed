import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const NFLB_BIN = `${REPO}/bin/nflb`;
/** Absolute, so a child started from any directory (or namespace) finds the same tsx. */
export const TSX_IMPORT = `${REPO}/node_modules/tsx/dist/esm/index.mjs`;

/** argv that runs a TypeScript file of this repo under Node + tsx. */
export function tsNode(file: string, args: readonly string[] = []): string[] {
  return [process.execPath, "--import", TSX_IMPORT, resolve(REPO, file), ...args];
}
