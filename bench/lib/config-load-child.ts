// One fresh process of bench/config-load.ts: reads a config file, then times ONE call of either
// nflb's parse + validate (parseConfigSource, what `check`, `plan`, `apply` and `run` do) or the
// `yaml` package's plain parse of the same text (no positions, no validation: the baseline). The
// module imports are timed apart. Prints one JSON line.
//
//   config-load-child.ts FILE nflb|yaml [SRC_DIR]    (SRC_DIR: another checkout's src/, for before/after)
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [file, what, srcDir] = process.argv.slice(2);
if (!file || (what !== "nflb" && what !== "yaml")) throw new Error("usage: FILE nflb|yaml [SRC_DIR]");
const text = readFileSync(file, "utf8");

const t0 = performance.now();
let run: () => unknown;
if (what === "nflb") {
  const src = resolve(srcDir ?? new URL("../../src", import.meta.url).pathname);
  const load = (await import(pathToFileURL(`${src}/config/load.ts`).href)) as {
    parseConfigSource: (text: string, file: string) => unknown;
  };
  run = () => load.parseConfigSource(text, file);
} else {
  const yaml = await import("yaml");
  run = () => yaml.parse(text);
}
const importMs = performance.now() - t0;

const c0 = process.cpuUsage();
const t1 = performance.now();
run();
const wall = performance.now() - t1;
const c = process.cpuUsage(c0);
process.stdout.write(JSON.stringify({ importMs, wall, cpu: (c.user + c.system) / 1000 }) + "\n");
