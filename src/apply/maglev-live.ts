import type { Config } from "../config/schema.ts";
import { FAMILY, TABLE } from "../nft/names.ts";
import { maglevSeed } from "../plan/maglev-seed.ts";
import type { ServicesPlan } from "../plan/services.ts";
import { listTableBounded } from "../system/nft.ts";

/** As apply's reading of the live table (src/apply/dataplane.ts): bigger tables are not read. */
const BOUNDS = { maxChars: 8 << 20, timeoutMs: 10_000 };

export function hasMaglev(c: Config): boolean {
  return Object.values(c.services ?? {}).some((s) => s.scheduler === "maglev");
}

/**
 * The maglev slots table `inet nflb` holds, as the cold plan's previous plan (src/plan/maglev-seed.ts);
 * null without maglev services, without the table, or when it is too big to read.
 */
export async function readMaglevSeed(c: Config, listing?: string | null): Promise<ServicesPlan | null> {
  if (!hasMaglev(c)) return null;
  const text =
    listing !== undefined ? listing : await listTableBounded(FAMILY, TABLE, BOUNDS).catch(() => null);
  return typeof text === "string" ? maglevSeed(c, text) : null;
}
