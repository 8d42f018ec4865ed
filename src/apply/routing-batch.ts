import { inverseOp, type Fam, type RoutingOp } from "../plan/routing.ts";
import { batchText, opFamily } from "../render/routes.ts";
import { IpBatchError, type IpPort } from "../system/iproute.ts";
import { diffOps, diffRouting, ownedRouting, type OwnedRange, type RoutingState } from "./diff-routing.ts";
import { readAll } from "./read-current.ts";

const FAMILIES: readonly Fam[] = [4, 6];

// Read by a module of its own, which the CLI loads early (src/apply/read-current.ts).
export { readAll };

/** nflb's rules and routes now (tagged with its protocol, inside its range). */
export async function readOwned(ip: IpPort, range: OwnedRange) {
  return ownedRouting(await readAll(ip), range);
}

/**
 * Run ops as one `ip -batch` per family. `ip -batch` is not atomic: when a line fails, the lines
 * before it stay applied, so those (and the other family's, if it went first) are undone with
 * their inverse ops before the error is rethrown. Returns an undo for the caller's own rollback.
 */
export async function applyRoutingOps(
  ip: IpPort,
  ops: readonly RoutingOp[],
  range: OwnedRange,
  before: RoutingState,
) {
  const applied: RoutingOp[] = [];
  for (const fam of FAMILIES) {
    const mine = ops.filter((o) => opFamily(o) === fam);
    if (!mine.length) continue;
    try {
      await ip.batch(fam, batchText(mine, fam));
      applied.push(...mine);
    } catch (e) {
      const n = e instanceof IpBatchError ? e.applied : null;
      const undo =
        n === null ? undoByReading(ip, range, before) : undoOps(ip, [...applied, ...mine.slice(0, n)]);
      throw await withRollback(e, undo);
    }
  }
  return () => undoOps(ip, applied);
}

/** The inverse of applied ops, last first; every line is tried (`-force`) so one failure stops nothing. */
export async function undoOps(ip: IpPort, applied: readonly RoutingOp[]): Promise<void> {
  const inverse = [...applied].reverse().map(inverseOp);
  const errors: unknown[] = [];
  for (const fam of [...FAMILIES].reverse()) {
    const text = batchText(inverse, fam);
    if (text) await ip.batch(fam, text, { force: true }).catch((e: unknown) => errors.push(e));
  }
  if (errors.length) throw errors[0];
}

/** When `ip` could not say how far it got: read what is there and put back what was. */
async function undoByReading(ip: IpPort, range: OwnedRange, before: RoutingState): Promise<void> {
  const now = await readOwned(ip, range);
  const ops = diffOps(diffRouting(before, now), now);
  for (const fam of FAMILIES) {
    const text = batchText(ops, fam);
    if (text) await ip.batch(fam, text, { force: true });
  }
}

/** The original error, saying whether the rollback worked too (it is never swallowed). */
export async function withRollback(e: unknown, undo: Promise<void>): Promise<unknown> {
  try {
    await undo;
    return e;
  } catch (u) {
    const msg = `${e instanceof Error ? e.message : String(e)}; rollback failed too: ${u instanceof Error ? u.message : String(u)}`;
    const err = new Error(msg, { cause: e });
    return err;
  }
}
