import { ROUTE_PROTO, type Fam } from "../plan/routing.ts";
import { FAMILY, TABLE } from "../nft/names.ts";
import { systemIp, type KernelRouting } from "../system/iproute.ts";
import { tableExists } from "../system/nft.ts";
import { emptyState, loadState, type State } from "../system/state.ts";

/**
 * The state file, if it still describes this namespace. Namespace inodes are reused after a
 * namespace is deleted, so a file whose rules and table are both gone belongs to a dead
 * namespace and must not be used to "restore" sysctls. `kernel` is the routing already read
 * (apply reads it anyway); without it this reads the rules itself.
 */
export async function loadOwnedState(kernel?: KernelRouting): Promise<State> {
  const s = await loadState();
  return ownedState(s, kernel);
}

/** `tables`: the output of `nft list tables` when the caller has it (as "FAMILY NAME"). */
export async function ownedState(s: State, kernel?: KernelRouting, tables?: string[]): Promise<State> {
  if (!s.priorities && Object.keys(s.sysctls).length === 0) return s;
  if (s.priorities) {
    const { from, to } = s.priorities;
    const rules =
      kernel?.rules ??
      (await Promise.all(([4, 6] as Fam[]).map((f) => systemIp.read(f)))).flatMap((k) => k.rules);
    // Our own rule in our range is proof enough, and costs no process when apply has read them.
    if (rules.some((r) => r.proto === ROUTE_PROTO && r.priority >= from && r.priority <= to)) return s;
  }
  if (tables ? tables.includes(`${FAMILY} ${TABLE}`) : await tableExists(FAMILY, TABLE)) return s;
  return emptyState();
}
