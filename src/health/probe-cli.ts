// Run the uplink monitors of a config and print what they see as JSON lines, one per event:
//   node --import tsx src/health/probe-cli.ts -c FILE [--uplink NAME]… [--no-rounds] [--duration S]
// For the lab tests (Node cannot switch network namespaces: run it under `ip netns exec`) and for
// trying probe settings by hand. Changes nothing on the system; stops its helpers on SIGTERM/SIGINT.
import { parseArgs } from "node:util";
import { loadConfig } from "../config/load.ts";
import { LinkWatcher } from "./link-watch.ts";
import type { UplinkMonitor } from "./types.ts";
import { createUplinkMonitor } from "./uplink-monitor.ts";

const out = (event: string, fields: Record<string, unknown>) =>
  process.stdout.write(JSON.stringify({ event, t: Date.now(), ...fields }) + "\n");

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: "string", short: "c" },
      uplink: { type: "string", multiple: true },
      "no-rounds": { type: "boolean", default: false },
      duration: { type: "string" },
    },
  });
  if (!values.config)
    throw new Error("usage: probe-cli -c FILE [--uplink NAME]… [--no-rounds] [--duration S]");
  const { config } = await loadConfig(values.config);
  const all = Object.entries(config.uplinks ?? {});
  const chosen = values.uplink ? all.filter(([n]) => values.uplink?.includes(n)) : all;
  if (chosen.length === 0) throw new Error("no uplinks to monitor");
  const log = (msg: string) => process.stderr.write(`${msg}\n`);

  const watcher = new LinkWatcher(
    chosen.map(([, u]) => u.interface),
    { log },
  );
  watcher.on("link", (s) => out("link", { ...s, addresses: s.addresses.map((a) => a.text) }));
  await watcher.start();

  const monitors: UplinkMonitor[] = [];
  for (const [name, u] of chosen) {
    const m = createUplinkMonitor(name, u, {
      link: watcher,
      log,
      onRound: (r, v, obs) => {
        if (values["no-rounds"]) return;
        out("round", {
          ...obs,
          seq: r.seq,
          good: v.good,
          counted: v.counted,
          why: v.why,
          results: r.results,
          // an extra round of a fast re-probe: { index, count }
          ...(r.burst ? { burst: r.burst } : {}),
        });
      },
    });
    m.on("change", (obs) => out("change", { ...obs }));
    monitors.push(m);
  }
  for (const m of monitors) m.start();
  out("ready", { uplinks: chosen.map(([n]) => n) });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await Promise.all(monitors.map((m) => m.stop()));
    await watcher.stop();
    out("stopped", {});
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
  if (values.duration) setTimeout(() => void stop(), Number(values.duration) * 1000);
  // Keep running while the monitors' (unref'd) timers do the work.
  setInterval(() => undefined, 60_000);
}

main().catch((err: unknown) => {
  process.stderr.write(`probe-cli: ${(err as Error).message}\n`);
  process.exit(1);
});
