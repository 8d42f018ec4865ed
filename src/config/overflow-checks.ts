import type { ConfigIssue } from "./issues.ts";
import type { Config } from "./schema.ts";

/** Warnings for `balance.method: overflow` and `metered` (valid, but probably not what was meant). */
export function overflowWarnings(c: Config): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const ups = Object.entries(c.uplinks ?? {});
  if (ups.length === 0) return out;
  if (c.balance.method === "overflow") {
    const unmetered = ups.filter(([, u]) => !u.metered && u.weight > 0);
    const without = unmetered.filter(([, u]) => u.capacity === undefined);
    if (unmetered.length > 1 && without.length === unmetered.length)
      out.push({
        path: ["balance", "method"],
        message:
          "overflow without any capacity: nothing is ever full, so every new connection goes to the first uplink; give each uplink its capacity, like capacity: { down: 100M, up: 20M }",
      });
  } else if (c.balance.overflow.threshold !== 0.8 || c.balance.overflow.recover !== 0.7) {
    out.push({
      path: ["balance", "overflow"],
      message: `balance.overflow applies to method: overflow only (method is ${c.balance.method})`,
    });
  }
  if (ups.every(([, u]) => u.metered))
    out.push({
      path: ["uplinks"],
      message: "every uplink is metered: they carry the balance as if none were; mark only the costly ones",
    });
  return out;
}

/** Errors: a probe's low mark (recover_*) needs its high mark and must not be above it. */
export function recoveryMarkErrors(c: Config): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const [n, u] of Object.entries(c.uplinks ?? {})) {
    const p = u.probe;
    for (const [low, high] of [
      ["recover_rtt", "max_rtt"],
      ["recover_loss", "max_loss"],
      ["recover_jitter", "max_jitter"],
    ] as const) {
      const lo = p[low];
      const hi = p[high];
      if (lo === null) continue;
      if (hi === null)
        out.push({
          path: ["uplinks", n, "probe", low],
          message: `${low} is the way back below ${high}, which is not set: set ${high} too, or remove ${low}`,
        });
      else if (lo > hi)
        out.push({
          path: ["uplinks", n, "probe", low],
          message: `${low} must not be above ${high} (the low mark a link must get under to come back)`,
        });
    }
  }
  return out;
}
