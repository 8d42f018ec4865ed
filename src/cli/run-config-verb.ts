import type { CheckOpts } from "./verbs-config.ts";

// The actions of `plan` and `apply`, shared by commander's verbs (verbs-config.ts) and main.ts's
// direct path (direct-verb.ts).

export async function runPlan(o: CheckOpts & { diff?: boolean }): Promise<void> {
  // The host is read from main.ts or here, while the config's modules load (src/cli/host-reads.ts).
  const hr = await import("./host-reads.ts");
  const reads = o.offline ? undefined : (hr.takeEarlyPlan() ?? hr.startReads({ nft: false }));
  return (await import("./actions-config.ts")).plan(o, reads);
}

export async function runApply(o: CheckOpts): Promise<void> {
  const hr = await import("./host-reads.ts");
  const early = hr.takeEarlyApply() ?? hr.startApplyReads();
  early.catch(() => {});
  return (await import("./actions-config.ts")).apply(o, early);
}
