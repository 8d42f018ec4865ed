import { RULE_OFFSETS, type Fam } from "../render/routes.ts";
import { FAMILY, TABLE } from "../nft/names.ts";
import * as ip from "../system/iproute.ts";
import { deleteTable, tableExists } from "../system/nft.ts";
import { writeSysctl } from "../system/sysctl.ts";
import { clearState } from "../system/state.ts";
import { loadOwnedState } from "./owned-state.ts";

export interface DownOptions {
  tableBase?: number;
  ruleBase?: number;
}

/**
 * Remove everything nflb installed and nothing else: its table, the rules in its priority range,
 * the routes in its tables, addresses it added; then restore the sysctls it changed.
 * Works from the state file alone, or from the config's (or default) ranges when there is none.
 */
export async function down(opts: DownOptions = {}): Promise<string[]> {
  const done: string[] = [];
  const state = await loadOwnedState();
  const tableBase = opts.tableBase ?? 200;
  const ruleBase = opts.ruleBase ?? 10_000;
  const tables = state.tables ?? { from: tableBase, to: tableBase + 100 };
  const prios = state.priorities ?? { from: ruleBase, to: ruleBase + RULE_OFFSETS.span - 1 };

  await deleteTable(FAMILY, TABLE);
  done.push(`nft delete table ${FAMILY} ${TABLE}`);
  // A cluster node also has an ARP-only table (ARP never reaches an inet table).
  if (await tableExists("arp", TABLE)) {
    await deleteTable("arp", TABLE);
    done.push(`nft delete table arp ${TABLE}`);
  }
  for (const fam of [4, 6] as Fam[]) {
    for (const r of await ip.readRules(fam)) {
      if (r.priority >= prios.from && r.priority <= prios.to) {
        await ip.deleteRule(r);
        done.push(`ip -${fam} rule del priority ${r.priority}`);
      }
    }
    for (const args of await ip.routesInTables(fam, tables.from, tables.to)) {
      await ip.ipRaw(fam, args).catch(() => undefined);
      done.push(`ip -${fam} ${args.join(" ")}`);
    }
  }
  for (const a of state.addresses) {
    await ip
      .ipRaw(a.cidr.includes(":") ? 6 : 4, ["addr", "del", a.cidr, "dev", a.iface])
      .catch(() => undefined);
    done.push(`ip addr del ${a.cidr} dev ${a.iface}`);
  }
  for (const m of state.maddrs ?? []) {
    await ip.ipRaw(4, ["maddr", "del", m.mac, "dev", m.iface]).catch(() => undefined);
    done.push(`ip maddr del ${m.mac} dev ${m.iface}`);
  }
  for (const [key, value] of Object.entries(state.sysctls).reverse()) {
    // An interface that has gone away took its settings with it.
    await writeSysctl(key, value).then(
      () => done.push(`sysctl ${key}=${value}`),
      () => undefined,
    );
  }
  await clearState();
  return done;
}
