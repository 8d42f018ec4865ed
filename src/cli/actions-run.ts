import { notifyReady } from "../system/sd-notify.ts";
import { holdStateLock } from "../system/lock.ts";
import type { LoadedConfig } from "../config/load.ts";
import type { Daemon } from "../daemon/daemon.ts";
import { CliError, EXIT } from "./exit.ts";
import { loadChecked } from "./load.ts";
import type { RunOpts } from "./verbs-daemon.ts";

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

  await holdStateLock(); // until this process exits: apply/down/another run refuse meanwhile
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
  notifyReady().catch((e: unknown) =>
    log.warn({ err: (e as Error).message, reason: "systemd" }, "could not notify systemd that nflb is ready"),
  );
  if (exiting) stopAndExit();
  else if (hupPending) void daemon.reload();
}
