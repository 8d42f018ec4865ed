import { ROUTE_PROTO, RULE_OFFSETS, type Fam } from "../plan/routing.ts";
import { FAMILY, TABLE } from "../nft/names.ts";
import { ipRaw, systemIp, type IpPort, type KernelRouting } from "../system/iproute.ts";
import { listTables, nftApply } from "../system/nft.ts";
import { isInterfaceKey, writeSysctl } from "../system/sysctl.ts";
import { clearState, loadState } from "../system/state.ts";
import { readAll } from "./routing-batch.ts";
import { ownedState } from "./owned-state.ts";
import { withStateLock } from "../system/lock.ts";
import type { OwnedRange } from "./diff-routing.ts";

export interface DownOptions {
  tableBase?: number;
  ruleBase?: number;
  /** The table range to search without a state file (the default config's 200–300 when unset). */
  tableSpan?: number;
}

/**
 * `ip -batch` lines that remove nflb's rules and routes, and only those: tagged with nflb's
 * protocol number and inside its ranges. A rule or route without the tag is someone else's even
 * at one of our priorities or in one of our tables (strongSwan: table 220, priority 220).
 * Deletes name the protocol too, so the kernel itself refuses to touch an untagged twin.
 */
export function downLines(k: KernelRouting, range: OwnedRange, fam: Fam): string[] {
  const inR = (n: number, r: { from: number; to: number }) => n >= r.from && n <= r.to;
  const lines: string[] = [];
  for (const r of k.rules)
    if (r.family === fam && r.proto === ROUTE_PROTO && inR(r.priority, range.priorities))
      lines.push(`rule del priority ${r.priority} protocol ${ROUTE_PROTO}`);
  for (const r of k.routes)
    if (r.family === fam && r.proto === ROUTE_PROTO && inR(r.table, range.tables))
      lines.push(
        ["route", "del", ...(r.type !== "unicast" ? [r.type] : []), r.dst, "table", String(r.table)]
          .concat("proto", String(ROUTE_PROTO))
          .join(" "),
      );
  return lines;
}

/**
 * Remove everything nflb installed and nothing else: its table, its rules and routes (tagged with
 * its protocol, inside the recorded ranges, or the config's or default ranges without a state
 * file), addresses it added; then restore the sysctls it changed.
 */
export async function down(opts: DownOptions = {}, ip: IpPort = systemIp): Promise<string[]> {
  return withStateLock("nflb down", () => downLocked(opts, ip));
}

async function downLocked(opts: DownOptions, ip: IpPort): Promise<string[]> {
  const done: string[] = [];
  // Everything is read at once (state file, rules and routes, nft's table names), then written
  // with one nft transaction and one `ip -batch` per family.
  const [saved, kernel, tables] = await Promise.all([loadState(), readAll(ip), listTables()]);
  const state = await ownedState(saved, kernel, tables);
  const tableBase = opts.tableBase ?? 200;
  const ruleBase = opts.ruleBase ?? 10_000;
  const range: OwnedRange = {
    tables: state.tables ?? { from: tableBase, to: tableBase + (opts.tableSpan ?? 100) },
    priorities: state.priorities ?? { from: ruleBase, to: ruleBase + RULE_OFFSETS.span - 1 },
  };

  // A cluster node also has an ARP-only table (ARP never reaches an inet table).
  const gone = [`${FAMILY} ${TABLE}`, `arp ${TABLE}`].filter((t) => tables.includes(t));
  // The table and the rules and routes go together: either gone first leaves packets to the main
  // table, as after down. nft's deletion of a big table mostly waits for the kernel (its RCU
  // grace period, ~50 ms with 10,000 prefixes), which the `ip` batches no longer wait behind.
  const dropping = gone.length ? nftApply(gone.map((t) => `delete table ${t}\n`).join("")) : undefined;
  const routing = ([4, 6] as Fam[]).map(async (fam) => {
    const lines = downLines(kernel, range, fam);
    if (!lines.length) return [];
    // -force: one route that went away with its link must not keep the rest in place.
    await ip.batch(fam, lines.join("\n") + "\n", { force: true }).catch(() => undefined);
    return lines.map((l) => `ip -${fam} ${l}`);
  });
  const [routingDone, dropped] = await Promise.allSettled([Promise.all(routing), dropping]);
  if (dropped.status === "rejected") throw dropped.reason;
  if (gone.length) done.push(...gone.map((t) => `nft delete table ${t}`));
  if (routingDone.status === "rejected") throw routingDone.reason;
  done.push(...routingDone.value.flat());
  for (const a of state.addresses) {
    await ipRaw(a.cidr.includes(":") ? 6 : 4, ["addr", "del", a.cidr, "dev", a.iface]).catch(() => undefined);
    done.push(`ip addr del ${a.cidr} dev ${a.iface}`);
  }
  for (const m of state.maddrs ?? []) {
    await ipRaw(4, ["maddr", "del", m.mac, "dev", m.iface]).catch(() => undefined);
    done.push(`ip maddr del ${m.mac} dev ${m.iface}`);
  }
  // In reverse order of recording: each interface's (recorded last) together (64 one by one took
  // ~10 ms with 32 uplinks), then the global ones one by one.
  const restore = (key: string, value: string) =>
    writeSysctl(key, value).then(
      () => `sysctl ${key}=${value}`,
      // An interface that has gone away took its settings with it.
      () => undefined,
    );
  const recorded = Object.entries(state.sysctls).reverse();
  const restored = await Promise.all(
    recorded.filter(([k]) => isInterfaceKey(k)).map(([k, v]) => restore(k, v)),
  );
  for (const [key, value] of recorded.filter(([k]) => !isInterfaceKey(k)))
    restored.push(await restore(key, value));
  done.push(...restored.filter((d) => d !== undefined));
  await clearState();
  return done;
}
