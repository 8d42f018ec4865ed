import { resolve } from "node:path";
import { parseDuration } from "../config/duration.ts";
import type { StatusJson } from "../daemon/status.ts";
import { formatStatus } from "../daemon/status-table.ts";
import { apiTarget, call, errorText } from "./api-client.ts";
import { CliError, EXIT, statusExitCode } from "./exit.ts";
import { printJson, say, wantsColour } from "./output.ts";
import type { ReloadOpts, StatusOpts } from "./verbs-daemon.ts";

export async function status(o: StatusOpts): Promise<void> {
  const t = await apiTarget(o, { token: false });
  const a = await call<StatusJson>(t, "GET", "/api/v1/status", { timeoutMs: 3000, noDaemonExit: EXIT.down });
  if (a.code !== 200) throw new CliError(`${t.base}/api/v1/status: ${errorText(a)}`, EXIT.down);
  if (o.json) printJson(a.body);
  else process.stdout.write(formatStatus(a.body, wantsColour()));
  process.exitCode = statusExitCode(a.body);
}

interface ReloadAnswer {
  ok?: boolean;
  error?: string;
  kind?: string;
  file?: string;
  issues?: unknown[];
  config_version?: string;
  applied?: string;
}

/** A reload the daemon refused because the new config is invalid: exit 2, with where. */
class ReloadRefused extends CliError {
  constructor(
    message: string,
    readonly file: string | undefined,
    readonly issues: unknown[] | undefined,
  ) {
    super(message, EXIT.config);
  }
}

export async function reload(o: ReloadOpts & { configGiven?: boolean }): Promise<void> {
  const timeoutMs = parseDuration(o.timeout);
  if (timeoutMs === null || timeoutMs < 1)
    throw new CliError(`--timeout ${o.timeout}: want a duration like 30s`);
  const t = await apiTarget(o);
  if (o.configGiven) {
    // The daemon re-reads its own file: say so rather than let the user believe FILE was loaded.
    const s = await call<StatusJson>(t, "GET", "/api/v1/status", { timeoutMs: 3000 });
    const running = s.body.config_file;
    if (s.code === 200 && running && resolve(running) !== resolve(o.config))
      throw new CliError(
        `the daemon at ${t.base} runs ${running}, not ${o.config}; a reload re-reads ${running}`,
      );
  }
  const a = await call<ReloadAnswer>(t, "POST", "/api/v1/reload", { timeoutMs });
  const b = a.body;
  if (a.code === 200 && b.ok !== false) {
    if (o.json) return printJson({ ok: true, config_version: b.config_version, applied: b.applied });
    say(`reloaded: config ${b.config_version ?? "?"} runs (${b.applied ?? "applied"})`);
    return;
  }
  const why = errorText(a);
  if (b.kind === "config") throw new ReloadRefused(`reload refused: ${why}`, b.file, b.issues);
  throw new CliError(`reload refused: ${why}`);
}
