// The CLI's entry. `nflb`, `nflb --help` and `nflb --version` are answered from text computed
// ahead (help-text.ts, generated from commander's own output; test/unit/cli-help.test.ts fails
// when it is stale), without loading commander or any verb: they are the first thing a person
// types. Everything else goes to the commander program (program.ts).
import { HELP, HELP_WIDTH, VERSION } from "./help-text.ts";

/** What commander would print for these arguments, when it is known ahead; undefined otherwise. */
export function quickAnswer(
  args: readonly string[],
): { text: string; stream: "out" | "err"; code: number } | undefined {
  // Commander wraps at min(columns, HELP_WIDTH) on a terminal (help-width.ts), else at HELP_WIDTH.
  const fits = (s: NodeJS.WriteStream) => !(s.isTTY && s.columns && s.columns < HELP_WIDTH);
  if (args.length === 0) return fits(process.stderr) ? { text: HELP, stream: "err", code: 1 } : undefined;
  if (args.length !== 1) return undefined;
  const [a] = args;
  if (a === "--version" || a === "-V") return { text: `${VERSION}\n`, stream: "out", code: 0 };
  if ((a === "--help" || a === "-h" || a === "help") && fits(process.stdout))
    return { text: HELP, stream: "out", code: 0 };
  return undefined;
}

const quick = quickAnswer(process.argv.slice(2));
if (quick) {
  (quick.stream === "out" ? process.stdout : process.stderr).write(quick.text);
  process.exitCode = quick.code;
} else {
  // `plan` and `apply` read the host from here, while commander and the verbs load.
  const args = process.argv.slice(2);
  if (args[0] === "apply" || args[0] === "plan") await (await import("./host-reads.ts")).startEarly(args);
  const { directVerb, runDirect } = await import("./direct-verb.ts");
  const direct = directVerb(args);
  if (direct) await runDirect(direct, process.argv);
  else await (await import("./program.ts")).runCli(process.argv);
}
