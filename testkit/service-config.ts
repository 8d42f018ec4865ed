// One balanced service as a user writes it, parsed: for the planner and reconciler tests that edit
// a service's backends between two plans (maglev keeps the slots of the backends that stay).
import { parseConfig } from "../src/config/load.ts";
import type { Config } from "../src/config/schema.ts";

/** Service `web` on 203.0.113.10:443 with these backends ("address:port"), maglev by default. */
export function webService(backends: readonly string[], scheduler = "maglev"): Config {
  return parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:443
    scheduler: ${scheduler}
    backends:
${backends.map((b) => `      - { address: ${b} }`).join("\n")}
`);
}
