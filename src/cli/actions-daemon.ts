import { resolve } from "node:path";
import { parseDuration } from "../config/duration.ts";
import type { LoadedConfig } from "../config/load.ts";
import type { Daemon } from "../daemon/daemon.ts";
import type { StatusJson } from "../daemon/status.ts";
import { formatStatus } from "../daemon/status-table.ts";
import { apiTarget, call, errorText } from "./api-client.ts";
import { CliError, EXIT, statusExitCode } from "./exit.ts";
import { loadChecked } from "./load.ts";
import { printJson, say, wantsColour } from "./output.ts";
import type { ReloadOpts, RunOpts, StatusOpts } from "./verbs-daemon.ts";

const NODE_NAME = /^[a-z][a-z0-9_-]{0,30}$/;

/** `--node NAME` replaces `cluster.node` of every config the daemon loads (start and reloads). */
export function withNode(loaded: LoadedConfig, node: string | undefined): LoadedConfig {
  const cl = loaded.config.cluster;
  if (node === undefined || !cl) return loaded;
  return { ...loaded, config: { ...loaded.config, cluster: { ...cl, node } } };
}

export async function run(o: RunOpts): Promise<void> {
  if (o.node !== undefined && !NODE_NAME.test(o.node))
    throw new CliError(
      `--node ${o.node}: names are lower-case letters, digits, _ and -, starting with a letter (≤ 31)`,
      EXIT.config,
    );
  // The daemon and everything under it (fastify, prom-client, the etcd client) load here only.
  const [{ Daemon }, { realFactories }, { createLogger }, { overridesPath }] = await Promise.all([
    import("../daemon/daemon.ts"),
    import("../daemon/factories.ts"),
    import("../daemon/log.ts"),
    import("../daemon/overrides-store.ts"),
  ]);
  const log = createLogger();
  // Signals are taken over before anything else: a SIGHUP while starting must not kill us.
  const running: { daemon?: Daemon } = {};
  let started = false;
  let hupPending = false;
  let exiting = false;
  const stopAndExit = () =>
    void (running.daemon?.stop() ?? Promise.resolve()).then(
      () => process.exit(0),
      (e: unknown) => {
        log.error({ err: (e as Error).message }, "error while stopping");
        process.exit(0);
      },
    );
  const exit = (signal: string) => {
    if (exiting) return;
    exiting = true;
    log.info({ reason: signal }, "stopping");
    // While starting, let the start finish (it is bounded) and stop right after it.
    if (started || !running.daemon) stopAndExit();
  };
  process.on("SIGHUP", () => {
    if (!started) hupPending = true;
    else void running.daemon?.reload();
  });
  process.once("SIGTERM", () => exit("SIGTERM"));
  process.once("SIGINT", () => exit("SIGINT"));

  const daemon = await Daemon.create({
    configFile: o.config,
    ...(o.api ? { api: o.api } : {}),
    factories: realFactories(log),
    load: async (file) => withNode((await loadChecked(file)).loaded, o.node),
    log,
    overridesFile: await overridesPath(),
  });
  if (o.node !== undefined && !daemon.model.config.cluster)
    log.warn({ node: o.node, reason: "no cluster section" }, "--node is ignored: the config has no cluster");
  running.daemon = daemon;
  try {
    await daemon.start();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "EADDRINUSE" || err.code === "EADDRNOTAVAIL")
      throw new CliError(`cannot serve the API on ${o.api ?? "api.listen"}: ${err.message}`);
    throw e;
  }
  started = true;
  if (exiting) stopAndExit();
  else if (hupPending) void daemon.reload();
}

export async function status(o: StatusOpts): Promise<void> {
  const t = await apiTarget(o);
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
