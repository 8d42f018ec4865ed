import type { LoadedConfig } from "../config/load.ts";
import { loadConfigCached, withPositions } from "../config/cached.ts";
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
    /** A config validated before by this build is taken as it was (src/config/cached.ts). */
    cache?: boolean;
  } = {},
): Promise<{ loaded: LoadedConfig; facts: Facts }> {
  // `ip -j addr` runs while the config is parsed.
  const reading = opts.offline
    ? Promise.resolve<Facts>({ interfaces: new Map() })
    : (opts.facts ?? readFacts(opts.routesJson));
  reading.catch(() => {});
  // The YAML reader, zod and the schemas are loaded only when the config is read (not a cached one).
  const loaded = opts.cache
    ? await loadConfigCached(file)
    : await (await import("../config/load.ts")).loadConfig(file);
  const facts = await reading;
  if (!opts.offline) {
    const issues = systemCheck(loaded.config, facts);
    if (issues.length) {
      const { ConfigError } = await import("../config/issues.ts");
      throw new ConfigError(file, (await withPositions(loaded)).locate(issues));
    }
  }
  return { loaded, facts };
}
