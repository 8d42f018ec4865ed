import type { Config, ServiceConfig } from "./schema.ts";

/**
 * A config's services as [name, service] pairs, listed once per config object. `c.services` is an
 * object of up to thousands of keys, which V8 keeps in dictionary mode: each `Object.entries` of it
 * sorts the keys again (~1 ms per 1,000 services), and the daemon lists them several times per
 * backend change. A loaded config is never changed in place, so the list stays valid.
 */
const listed = new WeakMap<Config, readonly (readonly [string, ServiceConfig])[]>();

export function serviceEntries(c: Config): readonly (readonly [string, ServiceConfig])[] {
  let out = listed.get(c);
  if (!out) listed.set(c, (out = Object.entries(c.services ?? {})));
  return out;
}
