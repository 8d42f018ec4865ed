// Running bin/nflb inside a lab namespace, and reading where connections went.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NetnsLab } from "../../../src/lab/lab.ts";
import type { ExecResult } from "../../../src/system/exec.ts";
import type { ClientSummary } from "../../../src/lab/traffic-summary.ts";

export const NFLB = fileURLToPath(new URL("../../../bin/nflb", import.meta.url));

/** A temp dir for config files and the per-namespace state, removed by `cleanup()`. */
export class ConfigDir {
  readonly dir = mkdtempSync(join(tmpdir(), "nflb-test-"));
  private n = 0;
  write(yaml: string): string {
    const file = join(this.dir, `config-${++this.n}.yaml`);
    writeFileSync(file, yaml);
    return file;
  }
  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** State files go to a per-run directory, so a run never reads another run's recorded sysctls. */
export const STATE_DIR = mkdtempSync(join(tmpdir(), "nflb-state-"));
process.on("exit", () => rmSync(STATE_DIR, { recursive: true, force: true }));

export function nflb(lab: NetnsLab, role: string, args: string[], timeoutMs = 30_000): Promise<ExecResult> {
  return lab.exec(role, [NFLB, ...args], { timeoutMs, env: { ...process.env, NFLB_STATE_DIR: STATE_DIR } });
}

export async function nflbOk(lab: NetnsLab, role: string, args: string[]): Promise<string> {
  const r = await nflb(lab, role, args);
  if (r.code !== 0) throw new Error(`nflb ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The echo server answers "NAME PEER": the peer is the uplink's NAT address the packet arrived from. */
export function bySourceSeen(s: ClientSummary): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [line, n] of Object.entries(s.bySeen)) {
    const peer = line.split(" ").pop() ?? line;
    out[peer] = (out[peer] ?? 0) + n;
  }
  return out;
}

/** Everything a host's network state consists of, for byte-for-byte comparisons. */
export async function snapshot(lab: NetnsLab, role: string): Promise<Record<string, string>> {
  const cmds: Record<string, string[]> = {
    ruleset: ["nft", "list", "ruleset"],
    rules4: ["ip", "-4", "rule"],
    rules6: ["ip", "-6", "rule"],
    routes4: ["ip", "-4", "route", "show", "table", "all"],
    routes6: ["ip", "-6", "route", "show", "table", "all"],
  };
  const out: Record<string, string> = {};
  for (const [k, argv] of Object.entries(cmds))
    out[k] = (await lab.run(role, argv)).replace(/expires \d+sec/g, "");
  return out;
}

export function percent(part: number, total: number): number {
  return (100 * part) / total;
}
