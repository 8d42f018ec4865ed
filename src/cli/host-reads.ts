import { readCurrent } from "../apply/read-current.ts";
import type { Facts } from "../net/facts.ts";
import { readInterfaces, systemIp } from "../system/iproute.ts";
import { acquireStateLock, StateLockError, type StateLock } from "../system/lock.ts";

/**
 * What `plan` and `apply` read of this host (the state file, the routing, the interfaces, for
 * apply nflb's tables too), started by the verb's action before it loads the config's modules
 * (the YAML reader, zod and its schemas: ~60 ms of module loading). This module imports none of
 * them, so the `ip` and `nft` processes start ~60 ms sooner, while the heap is still small (each
 * spawn blocks the main thread for a fork of it), and run beside the loading and the parse:
 * `nft list table` of 10,000 interval elements takes ~50 ms of nft CPU, which `apply` with
 * nothing to change then no longer waits for.
 */
export interface HostReads {
  reading: ReturnType<typeof readCurrent>;
  facts: Promise<Facts>;
}

export function startReads(opts: { nft: boolean }): HostReads {
  const reading = readCurrent(systemIp, opts);
  // Each is awaited later (or not, when the config is bad): none may count as unhandled meanwhile.
  reading.current.catch(() => {});
  reading.routing.catch(() => {});
  const facts = readInterfaces({ gateways: true, routesJson: reading.routesJson }).then(
    (interfaces): Facts => ({ interfaces, complete: true }),
  );
  facts.catch(() => {});
  return { reading, facts };
}

/**
 * `apply`: the state lock first, then the reads (under it: a concurrent apply may be recording
 * other slots). Undefined when someone holds the lock (the daemon, another apply): apply then reads
 * the config first, so that a bad config is reported as such, and waits for the lock after.
 */
export async function startApplyReads(): Promise<{ lock: StateLock; reads: HostReads } | undefined> {
  const lock = await acquireStateLock("nflb apply", { waitMs: 0 }).catch((e: unknown) => {
    if (e instanceof StateLockError) return undefined;
    throw e;
  });
  if (!lock) return undefined;
  return { lock, reads: startReads({ nft: true }) };
}

/** Reads main.ts started before commander and the verbs loaded, for the verb's action to take. */
let early:
  | { verb: "apply"; reads: ReturnType<typeof startApplyReads> }
  | { verb: "plan"; reads: HostReads }
  | undefined;

/**
 * Called by main.ts with the command line, before it loads commander (~15 ms) and the verbs:
 * `apply` and `plan` (not offline, no help asked) start their reads at once. Resolves when the
 * processes are started (apply: after taking the lock, a few fs calls), so that main.ts loads
 * the rest only then: loading a module blocks the event loop, the lock's callbacks with it. The
 * verb's options change nothing in what is read; a command line commander then refuses exits,
 * which releases the lock (StateLock's exit hook), and the `ip`/`nft` reads end by themselves.
 */
export async function startEarly(args: readonly string[]): Promise<void> {
  const [verb, ...rest] = args;
  if (rest.some((a) => a === "-h" || a === "--help")) return;
  if (verb === "apply") {
    const reads = startApplyReads();
    reads.catch(() => {});
    early = { verb, reads };
    await reads.catch(() => {});
  } else if (verb === "plan" && !rest.includes("--offline"))
    early = { verb, reads: startReads({ nft: false }) };
}

export function takeEarlyApply(): ReturnType<typeof startApplyReads> | undefined {
  const e = early?.verb === "apply" ? early.reads : undefined;
  early = undefined;
  return e;
}

export function takeEarlyPlan(): HostReads | undefined {
  const e = early?.verb === "plan" ? early.reads : undefined;
  early = undefined;
  return e;
}
