import { FAMILY, TABLE } from "../nft/names.ts";
import type { Fam } from "../render/routes.ts";
import { readRules } from "../system/iproute.ts";
import { tableExists } from "../system/nft.ts";
import { emptyState, loadState, type State } from "../system/state.ts";

/**
 * The state file, if it still describes this namespace. Namespace inodes are reused after a
 * namespace is deleted, so a file whose table and rules are both gone belongs to a dead
 * namespace and must not be used to "restore" sysctls.
 */
export async function loadOwnedState(): Promise<State> {
  const s = await loadState();
  if (!s.priorities && Object.keys(s.sysctls).length === 0) return s;
  if (await tableExists(FAMILY, TABLE)) return s;
  if (s.priorities) {
    const { from, to } = s.priorities;
    for (const fam of [4, 6] as Fam[]) {
      if ((await readRules(fam)).some((r) => r.priority >= from && r.priority <= to)) return s;
    }
  }
  return emptyState();
}
