import type { Command } from "commander";
import { Option } from "commander";
import { DEFAULT_CONFIG_PATH, loadConfig } from "../config/load.ts";
import { parseHostPort } from "../net/ip.ts";
import { Daemon, DEFAULT_API } from "../daemon/daemon.ts";
import { realFactories } from "../daemon/factories.ts";
import { createLogger } from "../daemon/log.ts";
import { notifyReady } from "../system/sd-notify.ts";
import type { StatusJson } from "../daemon/status.ts";
import { formatStatus } from "../daemon/status-table.ts";
import { holdStateLock } from "../system/lock.ts";
import { loadChecked } from "./load.ts";

const cfg = () => new Option("-c, --config <file>", "config file").default(DEFAULT_CONFIG_PATH);

/** run (the daemon) and status (ask it). */
export function registerDaemonVerbs(program: Command): void {
  program
    .command("run")
    .description(
      "the daemon: apply, probe, fail over, serve the API; SIGHUP reloads, SIGTERM leaves the data plane in place",
    )
    .addOption(cfg())
    .option("--api <host:port>", `API address (default: api.listen, ${DEFAULT_API})`)
    .addHelpText("after", "\nExample:\n  nflb run -c /etc/nflb/nflb.yaml --api 127.0.0.1:9110")
    .action(async (o: { config: string; api?: string }) => {
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
        load: async (file) => (await loadChecked(file)).loaded,
        log,
      });
      running.daemon = daemon;
      try {
        await daemon.start();
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err.code === "EADDRINUSE" || err.code === "EADDRNOTAVAIL")
          throw new Error(`cannot serve the API on ${o.api ?? "api.listen"}: ${err.message}`);
        throw e;
      }
      started = true;
      notifyReady().catch((e: unknown) =>
        log.warn(
          { err: (e as Error).message, reason: "systemd" },
          "could not notify systemd that nflb is ready",
        ),
      );
      if (exiting) stopAndExit();
      else if (hupPending) void daemon.reload();
    });

  program
    .command("status")
    .description("ask the running daemon; a table for people, JSON for scripts")
    .addOption(cfg())
    .option("--json", "print the daemon's JSON")
    .option("--api <host:port>", `API address (default: the config's api.listen, ${DEFAULT_API})`)
    .addHelpText("after", "\nExamples:\n  nflb status\n  nflb status --json | jq '.uplinks[].state'")
    .action(async (o: { config: string; json?: boolean; api?: string }) => {
      const api = o.api ?? (await configuredApi(o.config)) ?? DEFAULT_API;
      const hp = parseHostPort(api);
      if ("error" in hp) throw new Error(`--api: ${hp.error}`);
      const host = hp.addr.family === 6 ? `[${hp.addr.text}]` : hp.addr.text;
      const url = `http://${host}:${hp.port}/api/v1/status`;
      let s: StatusJson;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        s = (await res.json()) as StatusJson;
      } catch (e) {
        const cause = (e as { cause?: { code?: string } }).cause?.code;
        process.stderr.write(`nflb: no daemon answers at ${url}: ${cause ?? (e as Error).message}\n`);
        process.exit(1);
      }
      if (o.json) process.stdout.write(JSON.stringify(s, null, 2) + "\n");
      else process.stdout.write(formatStatus(s, process.stdout.isTTY === true && !process.env.NO_COLOR));
    });
}

/** The config's api.listen, when the config can be read; status works without a config too. */
async function configuredApi(file: string): Promise<string | null> {
  try {
    return (await loadConfig(file)).config.api.listen;
  } catch {
    return null;
  }
}
