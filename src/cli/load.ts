import { loadConfig, type LoadedConfig } from "../config/load.ts";
import { ConfigError } from "../config/issues.ts";
import { systemCheck } from "../config/system-checks.ts";
import type { Facts } from "../plan/types.ts";
import { readInterfaces } from "../system/iproute.ts";

export async function readFacts(): Promise<Facts> {
  return { interfaces: await readInterfaces(), complete: true };
}

/** Load, validate, and (unless offline) check the config against this host. Throws ConfigError. */
export async function loadChecked(
  file: string,
  opts: { offline?: boolean } = {},
): Promise<{ loaded: LoadedConfig; facts: Facts }> {
  const loaded = await loadConfig(file);
  const facts: Facts = opts.offline ? { interfaces: new Map() } : await readFacts();
  if (!opts.offline) {
    const issues = systemCheck(loaded.config, facts);
    if (issues.length) throw new ConfigError(file, loaded.locate(issues));
  }
  return { loaded, facts };
}
