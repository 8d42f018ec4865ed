// Balanced services as a user writes them, parsed: for the planner and reconciler tests that edit
// a service's backends between two plans (maglev keeps the slots of the backends that stay).
import { parseConfig } from "../src/config/load.ts";
import type { Config } from "../src/config/schema.ts";

/** One service's entry under `services:` (YAML text), with these backends ("address:port"). */
export function serviceYaml(
  name: string,
  listen: string,
  scheduler: string,
  backends: readonly string[],
): string {
  return `  ${name}:
    listen: ${listen}
    scheduler: ${scheduler}
    backends:
${backends.map((b) => `      - { address: ${b} }`).join("\n")}
`;
}

/** A config of just these services (each from serviceYaml). */
export function servicesConfig(...services: string[]): Config {
  return parseConfig(`version: 1\nservices:\n${services.join("")}`);
}

/** Service `web` on 203.0.113.10:443 with these backends ("address:port"), maglev by default. */
export function webService(backends: readonly string[], scheduler = "maglev"): Config {
  return servicesConfig(serviceYaml("web", "203.0.113.10:443", scheduler, backends));
}
