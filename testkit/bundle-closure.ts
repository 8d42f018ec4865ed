// What loads with a chunk of an esbuild split bundle: the unit tests that keep a verb's start
// small (cli-main, config-limits) walk the metafile with this.
import type { Metafile } from "esbuild";

/** The source files and external packages reachable from `start` by static imports (dynamic
 * imports are what loads later, on demand). */
export function staticClosure(
  outputs: Metafile["outputs"],
  start: string,
): { inputs: Set<string>; externals: Set<string> } {
  const inputs = new Set<string>();
  const externals = new Set<string>();
  const todo = [start];
  const done = new Set<string>();
  while (todo.length) {
    const k = todo.pop() as string;
    if (done.has(k)) continue;
    done.add(k);
    const o = outputs[k];
    if (!o) continue;
    for (const i of Object.keys(o.inputs)) inputs.add(i);
    for (const imp of o.imports) {
      if (imp.kind !== "import-statement") continue;
      if (imp.external) externals.add(imp.path);
      else todo.push(imp.path);
    }
  }
  return { inputs, externals };
}
