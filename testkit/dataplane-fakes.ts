// The system side of the daemon, faked for unit tests: the interfaces the test configs name and
// a data plane that takes every change without touching the kernel.
import type { DataplaneOps } from "../src/daemon/reconciler.ts";
import type { Facts } from "../src/plan/types.ts";

/** Interfaces wan1…wanN, up, wanI with 100.64.I.2: the uplinks of the tests' configs. */
export function wanFacts(n = 3): Facts {
  return {
    interfaces: new Map(
      Array.from({ length: n }, (_, k) => k + 1).map((i) => [
        `wan${i}`,
        { name: `wan${i}`, up: true, addresses: [{ family: 4 as const, text: `100.64.${i}.2` }] },
      ]),
    ),
  };
}

/** A data plane that succeeds at everything and changes nothing; `over` replaces any operation. */
export function idleOps(over: Partial<DataplaneOps> = {}): DataplaneOps {
  return {
    readFacts: async () => ({ interfaces: new Map() }),
    applyFull: async () => undefined,
    applyNft: async () => undefined,
    applyRouting: async () => undefined,
    tableExists: async () => true,
    flushConntrack: async () => 0,
    purgeSticky: async () => 0,
    ...over,
  };
}
