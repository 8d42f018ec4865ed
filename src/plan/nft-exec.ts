import { EXEC_MAP } from "../nft/names.ts";
import { map } from "../nft/objects.ts";
import type { NftSection } from "./nft-table.ts";

/**
 * `nflb exec --via UPLINK -- COMMAND`: the command runs in a transient cgroup (v2) of its own, and
 * its sockets' packets are steered to the uplink's pin chain from the output route chain, where
 * a changed mark makes the kernel route them again. One lookup per locally generated packet,
 * whatever the number of uplinks or commands; the map is empty unless a command runs.
 *
 * The cgroup sits directly under the root of the hierarchy (level 1). nft resolves an element's
 * path (relative to /sys/fs/cgroup) to the cgroup's id when the element is added. `nflb exec`
 * writes the elements itself, so the daemon's diff leaves them alone.
 */
export const EXEC_CGROUP_LEVEL = 1;

export function buildExec(): NftSection {
  return {
    objects: [
      map(EXEC_MAP, `socket cgroupv2 level ${EXEC_CGROUP_LEVEL} : verdict`, [], { owner: "external" }),
    ],
    prerouting: [],
    // After the uplinks' restore_mark rule: a connection already pinned keeps its mark.
    output: [`socket cgroupv2 level ${EXEC_CGROUP_LEVEL} vmap @${EXEC_MAP}`],
    postroutingNat: [],
  };
}
