// Standalone services loop, run inside the balancer's network namespace (lab tests use it to
// prove failover without the daemon): applies the table, checks every backend, applies a small
// update per change. Prints one JSON line per event; SIGTERM stops it and leaves the table.
//
//   backend-loop-main.ts --config FILE [--load-interval-ms N] [--no-full-apply]
import { parseArgs } from "node:util";
import { loadConfig } from "../config/load.ts";
import { readInterfaces } from "../system/iproute.ts";
import { runServiceHealthLoop } from "./backend-loop.ts";

const { values } = parseArgs({
  options: {
    config: { type: "string" },
    "load-interval-ms": { type: "string" },
    "no-full-apply": { type: "boolean", default: false },
  },
  strict: true,
});
if (!values.config) throw new Error("--config FILE is required");
const loadInterval = Number(values["load-interval-ms"] ?? 1000);
if (!Number.isInteger(loadInterval) || loadInterval < 50 || loadInterval > 60_000)
  throw new Error("--load-interval-ms must be an integer 50..60000");

const { config } = await loadConfig(values.config);
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");
const loop = await runServiceHealthLoop(config, {
  facts: { interfaces: await readInterfaces() },
  applyFull: !values["no-full-apply"],
  loadIntervalMs: loadInterval,
  onEvent: out,
});
out({ type: "ready", pid: process.pid });
process.on("SIGTERM", () => {
  void loop.stop().then(() => process.exit(0));
});
