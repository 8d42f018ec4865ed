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

/**
 * A bench's report: `say` shows each line at once on stderr (progress on a long run) and keeps it;
 * `print` writes them all to stdout at the end, to go into bench/RESULTS.md.
 */
export function report(): { say: (line?: string) => void; print: () => void } {
  const lines: string[] = [];
  return {
    say: (line = "") => {
      lines.push(line);
      process.stderr.write(line + "\n");
    },
    print: () => void process.stdout.write(lines.join("\n") + "\n"),
  };
}
