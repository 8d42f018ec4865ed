import { applyDesired } from "../apply/dataplane.ts";
import { ownedState } from "../apply/owned-state.ts";
import { startApplyReads, startReads, type HostReads } from "./host-reads.ts";
import { down as takeDown } from "../apply/down.ts";
import { allHealthy, desiredState, type Desired } from "../plan/desired.ts";
import { renderRouting } from "../render/routes.ts";
import { withStateLock } from "../system/lock.ts";
import { loadChecked } from "./load.ts";
import { readSlotFacts } from "../apply/uplink-slots.ts";
import { hasMaglev, readMaglevSeed } from "../apply/maglev-live.ts";
import { TABLE_REF } from "../nft/names.ts";
import { printJson, say } from "./output.ts";
import type { CheckOpts, DownOpts } from "./verbs-config.ts";

// The config's reader and checks (YAML, zod) are imported where a verb reads a config itself:
// `plan` and `apply` may take a validated one from the cache without them (src/config/cached.ts).
export async function check(o: CheckOpts): Promise<void> {
  const { checkWarnings, formatWarning } = await import("../config/warnings.ts");
  const { loaded, facts } = await loadChecked(o.config, { offline: o.offline === true });
  const c = loaded.config;
  const warnings = checkWarnings(loaded, o.offline ? null : facts);
  const counts = {
    uplinks: Object.keys(c.uplinks ?? {}).length,
    rules: c.rules.length,
    services: Object.keys(c.services ?? {}).length,
    cluster: c.cluster?.name ?? null,
  };
  if (o.json) return printJson({ ok: true, valid: true, file: o.config, ...counts, warnings });
  for (const w of warnings) process.stderr.write(formatWarning(o.config, w) + "\n");
  const parts = [
    c.uplinks && `${counts.uplinks} uplinks`,
    counts.rules && `${counts.rules} rules`,
    c.services && `${counts.services} services`,
    c.cluster && `cluster ${c.cluster.name}`,
  ].filter(Boolean);
  say(`${o.config}: valid (${parts.join(", ")})`);
}

/** `reads`: the host's state, read from the verb's start (src/cli/host-reads.ts). */
export async function plan(o: CheckOpts & { diff?: boolean }, reads?: HostReads): Promise<void> {
  // The state file and the routing, read while the config is parsed (as apply does).
  const host = o.offline ? undefined : (reads ?? startReads({ nft: false }));
  const reading = host?.reading;
  const { loaded, facts } = await loadChecked(o.config, {
    offline: o.offline === true,
    cache: true,
    ...(host ? { routesJson: host.reading.routesJson, facts: host.facts } : {}),
  });
  // The slots apply would use (the state file's): without them a reordered config would show moves.
  if (reading) {
    const slots = reading.current
      .then(({ state, kernel }) => ownedState(state, kernel))
      .then((owned) => readSlotFacts(loaded.config, owned));
    Object.assign(facts, await slots.catch(() => ({})));
  }
  const want = desiredState(loaded.config, allHealthy(loaded.config), facts);
  if (o.diff) return planDiff(o, want);
  const routing = renderRouting(want.routing);
  const sysctls = want.sysctls.map((s) => ({ key: s.key.replaceAll("/", "."), value: s.value, why: s.why }));
  if (o.json)
    return printJson({
      ok: true,
      nft: want.nft,
      routing: routing ? routing.split("\n") : [],
      sysctls,
    });
  const out = ["# nftables (one transaction: nft -f -)", want.nft.trimEnd(), "", "# policy routing"];
  out.push(routing || "# (none)", "", "# sysctls");
  out.push(...sysctls.map((s) => `${s.key} = ${s.value}    # ${s.why}`));
  say(out.join("\n"));
}

/** `early`: the state lock and the host's state, taken from the verb's start (src/cli/host-reads.ts). */
export async function apply(o: CheckOpts, early?: ReturnType<typeof startApplyReads>): Promise<void> {
  const r = await applyConfig(o.config, await (early ?? startApplyReads()));
  const d = r.routing;
  const sysctls = r.sysctls.map((s) => ({ key: s.key.replaceAll("/", "."), value: s.to }));
  if (o.json)
    return printJson({
      ok: true,
      seconds: r.seconds,
      nft: r.nft,
      rules: { added: d.addRules.length, deleted: d.delRules.length },
      routes: { replaced: d.replaceRoutes.length, deleted: d.delRoutes.length },
      sysctls,
    });
  say(
    `applied in ${r.seconds.toFixed(3)} s: nft table inet nflb ${r.nft}; rules +${d.addRules.length} -${d.delRules.length}; ` +
      `routes ~${d.replaceRoutes.length} -${d.delRoutes.length}; sysctls ${sysctls.map((s) => `${s.key}=${s.value}`).join(", ") || "unchanged"}`,
  );
}

/**
 * When the lock was free (`early`), it was taken first and the kernel's routing state, the state
 * file and nflb's tables are being read while the config is parsed (their `ip` and `nft` processes
 * run beside it). When someone holds it (the daemon, another apply), the config is read first as
 * before, so a bad config is reported as such.
 */
async function applyConfig(file: string, early: Awaited<ReturnType<typeof startApplyReads>>) {
  if (early === undefined) {
    const { loaded, facts } = await loadChecked(file, { cache: true });
    return withStateLock("nflb apply", async () => {
      // Read under the lock: a concurrent apply may be recording other slots.
      const slots = await readSlotFacts(loaded.config);
      return applyDesired(desiredState(loaded.config, allHealthy(loaded.config), { ...facts, ...slots }));
    });
  }
  const { lock, reads } = early;
  try {
    // nflb's tables are read too, so that apply sends only what differs from them.
    const { current, routing, routesJson } = reads.reading;
    const { loaded, facts } = await loadChecked(file, { routesJson, facts: reads.facts, cache: true });
    // The slots from the state file already read (the same reading applyDesired makes of it);
    // planning does not wait for the nft listing, which only applyDesired needs.
    const { state, kernel } = await routing;
    // (Without uplinks there are no slots, and no rule of nflb's proves the state file is ours.)
    const slots = loaded.config.uplinks
      ? await readSlotFacts(loaded.config, await ownedState(state, kernel))
      : {};
    // Maglev services are dealt from the slots in force (src/plan/maglev-seed.ts): that waits
    // for the nft listing.
    const seed = hasMaglev(loaded.config)
      ? await readMaglevSeed(
          loaded.config,
          (await current.catch(() => undefined))?.nft?.get(TABLE_REF) ?? null,
        )
      : null;
    const want = desiredState(loaded.config, allHealthy(loaded.config), { ...facts, ...slots }, seed);
    return await applyDesired(want, { current });
  } finally {
    await lock.release();
  }
}

export async function down(o: DownOpts): Promise<void> {
  const c = o.config ? (await (await import("../config/load.ts")).loadConfig(o.config)).config : null;
  const done = await takeDown(c ? { tableBase: c.table_base, ruleBase: c.rule_priority_base } : {});
  if (o.json) return printJson({ ok: true, done });
  say(done.map((d) => `  ${d}`).join("\n") + "\nnflb is down");
}

/**
 * `plan --diff`: what `apply` would change in the live kernel, object by object. nft: the kernel's
 * tables and the ones apply would install, both parsed by the same parser (src/nft/ruleset), so
 * only real differences show; elements nflb does not own (sticky maps, cluster buckets, exec
 * entries) are left out. Routing: nflb's tagged rules and routes against the plan, as apply
 * computes them. Sysctls: the current values against the wanted ones.
 */
async function planDiff(o: CheckOpts, want: Desired): Promise<void> {
  const [{ listTableText }, { parseRuleset }, { compareRulesets }, routing, { readSysctl }] =
    await Promise.all([
      import("../system/nft.ts"),
      import("../nft/ruleset/fake.ts"),
      import("../nft/ruleset/compare.ts"),
      import("../apply/routing-batch.ts"),
      import("../system/sysctl.ts"),
    ]);
  const { diffOps, diffRouting } = await import("../apply/diff-routing.ts");
  const { opLine } = await import("../render/routes.ts");
  const { systemIp } = await import("../system/iproute.ts");
  const live = (await Promise.all(want.model.tables.map((t) => listTableText(t.family, t.name))))
    .filter((t): t is string => t !== null)
    .join("\n");
  const foreign = new Set(
    want.model.tables.flatMap((t) =>
      t.objects
        .filter((x) => x.kind !== "counter" && x.kind !== "chain" && (x.owner ?? "model") !== "model")
        .map((x) => `${t.family} ${t.name}|${x.name}`),
    ),
  );
  const nft = compareRulesets(parseRuleset(live), parseRuleset(want.nft), {
    foreignElements: (table, set) => foreign.has(`${table}|${set}`),
  });
  const before = await routing.readOwned(systemIp, want.routing);
  const ops = diffOps(diffRouting(want.routing, before), before).map(
    (op) => `ip -${"rule" in op ? op.rule.family : op.route.family} ${opLine(op)}`,
  );
  const sysctls: { key: string; from: string | null; to: string }[] = [];
  for (const s of want.sysctls) {
    const cur = await readSysctl(s.key);
    if (cur !== s.value) sysctls.push({ key: s.key.replaceAll("/", "."), from: cur, to: s.value });
  }
  const same = !nft.length && !ops.length && !sysctls.length;
  if (o.json) return printJson({ ok: true, same, nft, routing: ops, sysctls });
  if (same) return say("the kernel holds what apply would install: nothing to change");
  const out = [`# nftables (${nft.length} difference(s); + apply adds, - apply removes, ~ apply changes)`];
  out.push(...nft.map((c) => `${c.op} ${c.object}: ${c.detail}`));
  out.push("", `# policy routing (${ops.length} op(s))`, ...ops, "", `# sysctls (${sysctls.length})`);
  out.push(...sysctls.map((s) => `${s.key}: ${s.from ?? "(unset)"} → ${s.to}`));
  say(out.join("\n"));
}
