// nflb's DNS service (src/dns/service.ts) on its own, for bench/dns-forwarder.ts: one domain rule
// (`*.bench.example`), its DNS set in a throw-away `inet nflb` table of this namespace, the
// forwarder on LISTEN to UPSTREAM. Prints {"ready":true}; on SIGUSR2 prints the process's memory
// after a GC and the table's entry count; ends on SIGTERM.
//
//   node --expose-gc --import tsx bench/lib/dns-forwarder-child.ts LISTEN UPSTREAM
import { Registry } from "prom-client";
import { parseConfig } from "../../src/config/load.ts";
import { DnsService } from "../../src/dns/service.ts";
import { exec } from "../../src/system/exec.ts";

const [listen = "", upstream = ""] = process.argv.slice(2);
const nft = async (script: string) => {
  const r = await exec(["nft", "-f", "-"], { input: script, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`nft: ${r.stderr}`);
};
await nft(
  "table inet nflb {\n\tset dom_bench_4 {\n\t\ttype ipv4_addr\n\t\tflags timeout\n\t\tsize 400000\n\t}\n}\n",
);
const c = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1 }
rules:
  - { name: bench, domains: ["*.bench.example"], via: [isp1] }
dns:
  listen: ["${listen}"]
  upstream: [${upstream}]
  min_ttl: 1h
  max_ttl: 1h
  max_entries_per_rule: 200000
  max_entries: 200000
`);
const log = {
  info: () => undefined,
  warn: () => undefined,
  error: (f: unknown, m: string) => console.error(m, f),
};
const svc = new DnsService(
  { exclusive: (fn) => fn(), applyNft: nft, appliedSets: () => new Set(["dom_bench_4"]), log },
  new Registry(),
);
await svc.configure(c, true);
process.stdout.write(JSON.stringify({ ready: true }) + "\n");
process.on("SIGTERM", () => {
  svc.stop();
  process.exit(0);
});
process.on("SIGUSR2", () => {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  const s = svc.status();
  process.stdout.write(JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, entries: s?.entries ?? 0 }) + "\n");
});
setInterval(() => undefined, 1 << 30);
