// What every bench prints above its tables: when, where, and the exact command.
import { cpus, loadavg, totalmem } from "node:os";
import { exec } from "../../src/system/exec.ts";

export async function machineLine(): Promise<string> {
  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  const kernel = (await exec(["uname", "-r"])).stdout.trim();
  const nft = (await exec(["nft", "--version"])).stdout.trim();
  const mem = Math.round(totalmem() / 2 ** 30);
  return `${cpus().length} cores (${cpu}), ${mem} GiB, kernel ${kernel}, Node ${process.version}, ${nft}`;
}

export function loadLine(): string {
  return `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`;
}

export function dateLine(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

export function requireRoot(what: string): void {
  if (process.platform !== "linux" || process.getuid?.() !== 0) {
    process.stderr.write(`${what} needs root on Linux (network namespaces, veth, nft)\n`);
    process.exit(2);
  }
}
