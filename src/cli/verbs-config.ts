import type { Command } from "commander";
import { Option } from "commander";
import { DEFAULT_CONFIG_PATH } from "../config/load.ts";
import { allHealthy } from "../plan/desired.ts";
import { desiredState } from "../plan/desired.ts";
import { renderRouting } from "../render/routes.ts";
import { applyDesired } from "../apply/dataplane.ts";
import { down } from "../apply/down.ts";
import { withStateLock } from "../system/lock.ts";
import { loadConfig } from "../config/load.ts";
import { loadChecked } from "./load.ts";
import { checkWarnings, formatWarning } from "../config/warnings.ts";

const cfg = () => new Option("-c, --config <file>", "config file").default(DEFAULT_CONFIG_PATH);

/** check, plan, apply, down: the verbs that turn a config into a data plane once. */
export function registerConfigVerbs(program: Command): void {
  program
    .command("check")
    .description("validate the config; every error names its YAML path and line")
    .addOption(cfg())
    .option("--offline", "skip checks against this host (interfaces, addresses)")
    .addHelpText("after", "\nExample:\n  nflb check -c /etc/nflb/nflb.yaml")
    .action(async (o: { config: string; offline?: boolean }) => {
      const { loaded, facts } = await loadChecked(o.config, { offline: o.offline === true });
      const c = loaded.config;
      for (const w of checkWarnings(loaded, o.offline ? null : facts))
        process.stderr.write(formatWarning(o.config, w) + "\n");
      const parts = [
        c.uplinks && `${Object.keys(c.uplinks).length} uplinks`,
        c.rules.length && `${c.rules.length} rules`,
        c.services && `${Object.keys(c.services).length} services`,
        c.cluster && `cluster ${c.cluster.name}`,
      ].filter(Boolean);
      process.stdout.write(`${o.config}: valid (${parts.join(", ")})\n`);
    });

  program
    .command("plan")
    .description(
      "print the nftables script and the ip rules/routes that apply would install; changes nothing",
    )
    .addOption(cfg())
    .option("--offline", "plan without reading this host's interfaces")
    .addHelpText("after", "\nExample:\n  nflb plan -c /etc/nflb/nflb.yaml | less")
    .action(async (o: { config: string; offline?: boolean }) => {
      const { loaded, facts } = await loadChecked(o.config, { offline: o.offline === true });
      const want = desiredState(loaded.config, allHealthy(loaded.config), facts);
      const out = ["# nftables (one transaction: nft -f -)", want.nft.trimEnd(), "", "# policy routing"];
      out.push(renderRouting(want.routing) || "# (none)", "", "# sysctls");
      out.push(...want.sysctls.map((s) => `${s.key.replaceAll("/", ".")} = ${s.value}    # ${s.why}`));
      process.stdout.write(out.join("\n") + "\n");
    });

  program
    .command("apply")
    .description("install the data plane once, every uplink and backend assumed healthy")
    .addOption(cfg())
    .addHelpText("after", "\nExample:\n  nflb apply -c /etc/nflb/nflb.yaml")
    .action(async (o: { config: string }) => {
      const { loaded, facts } = await loadChecked(o.config);
      const want = desiredState(loaded.config, allHealthy(loaded.config), facts);
      const r = await withStateLock("nflb apply", () => applyDesired(want));
      const d = r.routing;
      process.stdout.write(
        `applied in ${r.seconds.toFixed(3)} s: nft table inet nflb; rules +${d.addRules.length} -${d.delRules.length}; ` +
          `routes ~${d.replaceRoutes.length} -${d.delRoutes.length}; sysctls ${r.sysctls.map((s) => `${s.key.replaceAll("/", ".")}=${s.to}`).join(", ") || "unchanged"}\n`,
      );
    });

  program
    .command("down")
    .description("remove everything nflb installed (table, rules, routes, sysctls) and nothing else")
    .addOption(new Option("-c, --config <file>", "config file (optional; used for its table/rule ranges)"))
    .addHelpText("after", "\nExample:\n  nflb down")
    .action(async (o: { config?: string }) => {
      const c = o.config ? (await loadConfig(o.config)).config : null;
      const done = await down(c ? { tableBase: c.table_base, ruleBase: c.rule_priority_base } : {});
      process.stdout.write(done.map((d) => `  ${d}`).join("\n") + "\nnflb is down\n");
    });
}
