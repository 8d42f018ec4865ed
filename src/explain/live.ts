import type { Config } from "../config/schema.ts";
import type { StatusJson } from "../daemon/status.ts";
import type { HealthView } from "../plan/desired.ts";
import type { BackendHealth } from "../plan/types.ts";

/**
 * Turning what the running system says into the planner's inputs, for `nflb explain`. Pure: the
 * CLI fetches the daemon's status and lists the kernel's maps, this module only reads them.
 */

/** The daemon's `/api/v1/status` → the health the planner needs to compute the same split. */
export function healthFromStatus(c: Config, s: StatusJson): HealthView {
  const view: HealthView = { uplinks: {}, services: {} };
  for (const name of Object.keys(c.uplinks ?? {})) {
    const u = s.uplinks.find((x) => x.name === name);
    // An uplink the daemon does not report (a config newer than the daemon's) counts as up.
    if (!u) view.uplinks[name] = { up: true };
    else if (u.state === "up") {
      view.uplinks[name] = { up: true, weight: u.effective_weight ?? u.weight };
      // A family its probes call down (the other is up) leaves only that family's split.
      const down = ([4, 6] as const).filter((f) => u.families?.[`ipv${f}`]?.state === "down");
      if (down.length) view.uplinks[name].downFamilies = down;
    } else view.uplinks[name] = { up: false };
  }
  for (const [name, svc] of Object.entries(c.services ?? {})) {
    const reported = s.services.find((x) => x.name === name);
    const out: Record<string, BackendHealth> = {};
    for (const b of svc.backends) {
      const r = reported?.backends.find((x) => x.address === b.address);
      if (!r) continue;
      out[b.address] = {
        up: r.state !== "down",
        weight: r.state === "draining" ? 0 : r.weight,
        connections: r.connections ?? 0,
      };
    }
    view.services[name] = out;
  }
  return view;
}

/** One line about the health used, e.g. "isp1 up, isp2 down (disabled)". */
export function statusSummary(s: StatusJson): string {
  return s.uplinks.map((u) => `${u.name} ${u.state}`).join(", ");
}
