// The system side of the daemon, faked for unit tests: the interfaces the test configs name and
// a data plane that takes every change without touching the kernel.
import type { DataplaneOps } from "../src/daemon/reconciler.ts";
import type { Facts } from "../src/plan/types.ts";

/** Interfaces that are up, by name, with these global addresses (IPv4 or IPv6, by their text). */
export function interfaceFacts(addresses: Record<string, readonly string[]>): Facts {
  return {
    interfaces: new Map(
      Object.entries(addresses).map(([name, list]) => [
        name,
        { name, up: true, addresses: list.map((text) => ({ family: text.includes(":") ? 6 : 4, text })) },
      ]),
    ),
  };
}

/** Interfaces wan1…wanN, up, wanI with 100.64.I.2: the uplinks of the tests' configs. */
export function wanFacts(n = 3): Facts {
  return interfaceFacts(
    Object.fromEntries(Array.from({ length: n }, (_, k) => [`wan${k + 1}`, [`100.64.${k + 1}.2`]])),
  );
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
