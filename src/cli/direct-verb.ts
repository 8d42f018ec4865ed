import { DEFAULT_CONFIG_PATH } from "./defaults.ts";
import type { CheckOpts } from "./verbs-config.ts";

// `nflb apply` and `nflb plan` with nothing but their own options (nearly every call: scripts,
// systemd, the bench) go straight to their action: commander and every verb's definition are
// ~15 ms of loading and building (program.ts) that tell these two nothing new. Only a command
// line commander would read the same way is taken here; anything else (help, a repeated or
// unknown option, a missing value) goes to commander, which words the errors.

export type DirectVerb =
  { verb: "apply"; opts: CheckOpts } | { verb: "plan"; opts: CheckOpts & { diff?: boolean } };

const FLAGS: Record<DirectVerb["verb"], Record<string, "json" | "offline" | "diff">> = {
  apply: { "--json": "json" },
  plan: { "--json": "json", "--offline": "offline", "--diff": "diff" },
};

/** The verb and the options commander would give its action, or undefined: leave it to commander. */
export function directVerb(args: readonly string[]): DirectVerb | undefined {
  const [verb, ...rest] = args;
  if (verb !== "apply" && verb !== "plan") return undefined;
  const flags: { json?: boolean; offline?: boolean; diff?: boolean } = {};
  let config: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] as string;
    const flag = FLAGS[verb][a];
    if (a === "-c" || a === "--config") {
      const v = rest[++i];
      if (config !== undefined || v === undefined || v === "" || v.startsWith("-")) return undefined;
      config = v;
    } else if (flag !== undefined && flags[flag] === undefined) flags[flag] = true;
    else return undefined;
  }
  const opts = { config: config ?? DEFAULT_CONFIG_PATH, ...flags };
  return verb === "apply" ? { verb, opts } : { verb, opts };
}

/** Runs it as commander's action would, failures reported as runCli reports them. */
export async function runDirect(d: DirectVerb, argv: readonly string[]): Promise<void> {
  try {
    const run = await import("./run-config-verb.ts");
    await (d.verb === "apply" ? run.runApply(d.opts) : run.runPlan(d.opts));
  } catch (e) {
    (await import("./exit.ts")).reportFailure(e, argv);
  }
}
