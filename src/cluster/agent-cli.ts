// A cluster member on its own, without the rest of the daemon (lab tests, benches, debugging):
//
//   node --import tsx src/cluster/agent-cli.ts -c FILE [--node NAME] [--witness-port N] [--no-leave]
//
// Prints one JSON line per event ({"event":"ready"|"change"|"config"|"config-refused"|"log",…}).
// SIGTERM/SIGINT hand the node's buckets over at once (unless --no-leave) and exit 0.
import { parseArgs } from "node:util";
import { loadConfig } from "../config/load.ts";
import { ClusterAgent } from "./agent.ts";
import { KernelHost } from "./host.ts";

const { values } = parseArgs({
  options: {
    config: { type: "string", short: "c" },
    node: { type: "string" },
    "witness-port": { type: "string" },
    "no-leave": { type: "boolean", default: false },
  },
  strict: true,
});

const out = (o: Record<string, unknown>) =>
  process.stdout.write(JSON.stringify({ t: Date.now(), ...o }) + "\n");

const loaded = await loadConfig(values.config ?? "/etc/nflb/nflb.yaml");
const port = values["witness-port"] ? Number(values["witness-port"]) : undefined;
if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535))
  throw new Error("--witness-port: 1..65535");
const agent = new ClusterAgent({
  config: loaded.config,
  host: new KernelHost(),
  ...(values.node ? { node: values.node } : {}),
  ...(port ? { witnessPort: port } : {}),
});
agent.on("change", (s) => out({ event: "change", ...s }));
agent.on("config", (_c, version) => out({ event: "config", version }));
agent.on("config-refused", (r) => out({ event: "config-refused", ...r }));
agent.on("log", (msg) => out({ event: "log", node: agent.node, msg }));

let stopping = false;
const shutdown = () => {
  if (stopping) return;
  stopping = true;
  void agent.stop({ leave: !values["no-leave"] }).finally(() => process.exit(0));
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

await agent.start();
out({ event: "ready", node: agent.node, pid: process.pid });
