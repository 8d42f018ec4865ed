import { daemonClusterPart } from "../cluster/daemon-host.ts";
import { spreadBackendChecker } from "../health/backend-checker.ts";
import { CHECKS_PER_SECOND, CheckLimiter, defaultInFlightBound } from "../health/check-limiter.ts";
import { ConntrackFlowMonitor } from "../health/flow-monitor.ts";
import { LinkWatcher } from "../health/link-watch.ts";
import { spawnPolledLines } from "../health/probe-process.ts";
import { createUplinkMonitor } from "../health/uplink-monitor.ts";
import type { Log } from "./log.ts";
import type { MonitorFactories } from "./monitors.ts";

/**
 * The real health sources: one link watcher shared by every uplink monitor (carrier and address
 * events take an uplink down at once), a prober per uplink, a checker per backend (all backends'
 * checks share one bound on checks in flight: src/health/check-limiter.ts).
 *
 * With a `cluster:` section, the cluster agent (src/cluster/daemon-host.ts).
 */
export function realFactories(log: Log): MonitorFactories {
  const limiter = new CheckLimiter(defaultInFlightBound(), CHECKS_PER_SECOND);
  const link = new LinkWatcher([], { log: (msg) => log.warn({ reason: "link watch" }, msg) });
  return {
    uplink: (ctx) => {
      const g = ctx.uplink.gateway;
      link.watch(ctx.uplink.interface, { gateways: g === undefined || g === "auto" });
      return createUplinkMonitor(ctx.name, ctx.uplink, {
        link,
        log: (msg) => log.debug({ uplink: ctx.name }, msg),
        warn: (msg) => log.warn({ uplink: ctx.name }, `prober: ${msg}`),
      });
    },
    backend: (ctx) => spreadBackendChecker(ctx, limiter),
    cluster: (ctx) => daemonClusterPart(ctx),
    uplinkEvents: spawnPolledLines,
    flows: () => new ConntrackFlowMonitor({ log: (msg) => log.warn({ reason: "conntrack events" }, msg) }),
    start: () => link.start(),
    stop: () => link.stop(),
  };
}
