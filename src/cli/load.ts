import { loadConfig, type LoadedConfig } from "../config/load.ts";
import { ConfigError } from "../config/issues.ts";
import { systemCheck } from "../config/system-checks.ts";
import type { Facts } from "../plan/types.ts";
import { readInterfaces } from "../system/iproute.ts";

/** `routesJson`: every route of each family, when the caller reads them anyway (see readInterfaces). */
export async function readFacts(routesJson?: Promise<{ 4: string; 6: string } | undefined>): Promise<Facts> {
  return {
    interfaces: await readInterfaces(routesJson ? { gateways: true, routesJson } : { gateways: true }),
    complete: true,
  };
}

/** Load, validate, and (unless offline) check the config against this host. Throws ConfigError. */
export async function loadChecked(
  file: string,
  opts: {
    offline?: boolean;
    routesJson?: Promise<{ 4: string; 6: string } | undefined>;
    /** The interfaces, when the caller started reading them already (src/cli/host-reads.ts). */
    facts?: Promise<Facts>;
  } = {},
): Promise<{ loaded: LoadedConfig; facts: Facts }> {
  // `ip -j addr` runs while the config is parsed.
  const reading = opts.offline
    ? Promise.resolve<Facts>({ interfaces: new Map() })
    : (opts.facts ?? readFacts(opts.routesJson));
  reading.catch(() => {});
  const loaded = await loadConfig(file);
  const facts = await reading;
  if (!opts.offline) {
    const issues = systemCheck(loaded.config, facts);
    if (issues.length) throw new ConfigError(file, loaded.locate(issues));
  }
  return { loaded, facts };
}
