import { crossCheck } from "./cross-checks.ts";
import type { Config } from "./schema.ts";
import { validateFast } from "./validate-fast.ts";
import { subsetYaml } from "./yaml-subset.ts";

// The read `plan` and `apply` make of a config edited since their last run: the plain-subset
// reader, the fast list checks and zod, the cross-checks, and nothing that keeps YAML positions.
// Neither this module nor what it imports loads the `yaml` package (~260 KB of bundle): a config
// with anything to report, or outside the subset, is read again by load.ts, which words every
// issue with its line.

/**
 * A config file is a few kilobytes; 5,000 services × 50 backends are ~10 MiB. Far beyond this is a
 * mistake or an attack.
 */
export const MAX_CONFIG_BYTES = 64 << 20;

/** The validated config of YAML data already read, when it is plainly valid (nothing to report). */
export function validRaw(raw: unknown): Config | undefined {
  const config = validateFast(raw ?? {});
  if (!config || crossCheck(config).length > 0) return undefined;
  return config;
}

/**
 * The validated config of `text` when it is written in the plain subset of YAML (nearly every
 * config) and valid; undefined otherwise, for the caller to read it with load.ts.
 */
export function parseSubsetValid(text: string): Config | undefined {
  if (Buffer.byteLength(text, "utf8") > MAX_CONFIG_BYTES) return undefined;
  // Undefined: outside the subset. The subset has no `__proto__` key.
  const raw = subsetYaml(text);
  return raw === undefined ? undefined : validRaw(raw);
}
