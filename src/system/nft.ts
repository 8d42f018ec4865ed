import { exec, ExecError, run } from "./exec.ts";

/** The only module that runs `nft`. Every write is one `nft -f -` invocation: one kernel transaction. */
export class NftError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = "NftError";
  }
}

export async function nftApply(script: string, opts: { check?: boolean } = {}): Promise<void> {
  const args = opts.check ? ["nft", "-c", "-f", "-"] : ["nft", "-f", "-"];
  const r = await exec(args, { input: script, timeoutMs: 60_000, viaSpawner: true });
  if (r.code !== 0)
    throw new NftError(`nft rejected the transaction (nothing was changed):\n${r.stderr.trim()}`, r.stderr);
}

/**
 * The names only: `nft list table` would print every element (100 maglev services are 100,000
 * lines, 5,000 × 50 round-robin 85 MB) and, slow enough, time out and read as "missing".
 */
export async function tableExists(family: string, table: string): Promise<boolean> {
  const r = await exec(TABLE_NAMES, { viaSpawner: true });
  return r.code === 0 && tableNames(r.stdout).includes(`${family} ${table}`);
}

/**
 * Every table's name without reading any set: nft 1.0.6 reads every set's elements for `list
 * tables` (~30 ms of CPU with 10,000 prefixes in nflb's table), while `list flowtables` prints
 * each table (`table FAMILY NAME {`, its flowtables inside, nflb has none) and reads no element
 * (~4 ms).
 */
const TABLE_NAMES = ["nft", "list", "flowtables"];

function tableNames(out: string): string[] {
  const names: string[] = [];
  for (const line of out.split("\n")) {
    const m = /^table (\S+) (\S+) \{$/.exec(line);
    if (m) names.push(`${m[1]} ${m[2]}`);
  }
  return names;
}

export async function listTableText(family: string, table: string): Promise<string | null> {
  const r = await exec(["nft", "list", "table", family, table]);
  return r.code === 0 ? r.stdout : null;
}

/**
 * `nft list table` when it is small enough to be worth reading: undefined when nft printed more
 * than `maxChars` or took longer than `timeoutMs` (killed), null when the table is not there.
 */
export async function listTableBounded(
  family: string,
  table: string,
  bounds: { maxChars: number; timeoutMs: number },
): Promise<string | null | undefined> {
  const r = await exec(["nft", "list", "table", family, table], {
    maxStdout: bounds.maxChars,
    timeoutMs: bounds.timeoutMs,
    killSignal: "SIGKILL",
    // 10,000 prefixes are ~300 KB: through a pipe nft would wait for apply's busy main thread.
    stdoutToFile: true,
  });
  if (r.truncated || r.code >= 128) return undefined;
  return r.code === 0 ? r.stdout : null;
}

export async function deleteTable(family: string, table: string): Promise<void> {
  if (await tableExists(family, table)) await run(["nft", "delete", "table", family, table]);
}

/** `nft -j list …` output without the leading metainfo object. */
export async function listJson(what: string[]): Promise<Record<string, unknown>[]> {
  const out = await run(["nft", "-j", "list", ...what]).catch((e: unknown) => {
    if (e instanceof ExecError) return "";
    throw e;
  });
  if (!out) return [];
  const parsed = JSON.parse(out) as { nftables?: Record<string, unknown>[] };
  return (parsed.nftables ?? []).filter((o) => !("metainfo" in o));
}

/** Named counters of a table: name → packets/bytes. */
export async function readCounters(
  family: string,
  table: string,
): Promise<Map<string, { packets: number; bytes: number }>> {
  const items = await listJson(["counters", "table", family, table]);
  const out = new Map<string, { packets: number; bytes: number }>();
  for (const it of items) {
    const c = it.counter as { name?: string; packets?: number; bytes?: number } | undefined;
    if (c?.name) out.set(c.name, { packets: c.packets ?? 0, bytes: c.bytes ?? 0 });
  }
  return out;
}

/** Every table as "FAMILY NAME" (cheap, unlike listing a table with its elements: TABLE_NAMES). */
export async function listTables(): Promise<string[]> {
  return tableNames(await run(TABLE_NAMES));
}
