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
