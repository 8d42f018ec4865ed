import { formatDuration } from "../config/duration.ts";
import type { BackendConfig, ServiceConfig } from "../config/schema.ts";
import type { PlannedService } from "../plan/services.ts";
import type { BackendStatus, CheckStatus, ServiceStatus } from "./status.ts";

/**
 * What a service's status says beyond its backends' states: how it balances (scheduler,
 * persistence, whether the backups serve now) and what its check asks for. `planned` is the plan
 * the kernel holds (absent before the first apply).
 */
export function serviceExtras(
  s: ServiceConfig,
  planned: PlannedService | undefined,
): Pick<ServiceStatus, "scheduler" | "persistence" | "on_backups" | "check"> {
  return {
    scheduler: s.scheduler,
    persistence: s.persistence !== undefined ? formatDuration(s.persistence) : null,
    on_backups: planned?.onBackups === true && s.backends.some((b) => b.backup === true),
    check: checkStatus(s),
  };
}

export function checkStatus(s: ServiceConfig): CheckStatus {
  const c = s.check;
  const web = c.method === "http" || c.method === "https";
  return {
    method: c.method,
    interval_ms: c.interval,
    timeout_ms: c.timeout,
    rise: c.rise,
    fall: c.fall,
    port: c.port ?? null,
    ...(web
      ? {
          path: c.path,
          expect_status: c.expect_status ?? null,
          host: c.host ?? null,
          expect_body: c.expect_body ?? null,
        }
      : {}),
    ...(c.method === "https" ? { sni: c.sni ?? null } : {}),
  };
}

/** A backend's role (regular or backup) and whether it takes new connections now. */
export function backendExtras(
  b: BackendConfig,
  index: number,
  planned: PlannedService | undefined,
): Pick<BackendStatus, "backup" | "serving"> {
  // The plan lists backends in config order; a reload not yet applied may differ: check the key.
  const at = planned?.backends[index];
  const p = at?.key === b.address ? at : undefined;
  const serving =
    p !== undefined &&
    planned !== undefined &&
    p.state === "up" &&
    (p.backup === true) === (planned.onBackups === true);
  return { backup: b.backup === true, serving };
}
