import { createBackendChecker } from "../health/backend-checker.ts";
import { LinkWatcher } from "../health/link-watch.ts";
import { createUplinkMonitor } from "../health/uplink-monitor.ts";
import type { Log } from "./log.ts";
import type { MonitorFactories } from "./monitors.ts";

/**
 * The real health sources: one link watcher shared by every uplink monitor (carrier and address
 * events take an uplink down at once), a prober per uplink, a checker per backend.
 *
 * SEAM: no cluster agent is wired yet (`cluster` is left undefined, so a `cluster:` section is
 * applied but not coordinated); add it here once src/cluster exposes its agent.
 */
export function realFactories(log: Log): MonitorFactories {
  const link = new LinkWatcher([], { log: (msg) => log.warn({ reason: "link watch" }, msg) });
  return {
    uplink: (ctx) => {
      link.watch(ctx.uplink.interface);
      return createUplinkMonitor(ctx.name, ctx.uplink, {
        link,
        log: (msg) => log.debug({ uplink: ctx.name }, msg),
      });
    },
    backend: (ctx) => createBackendChecker(ctx),
    start: () => link.start(),
    stop: () => link.stop(),
  };
}
