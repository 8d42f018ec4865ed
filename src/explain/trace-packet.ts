import type { Addr } from "../net/ip.ts";
import { parseRuleset, type Ruleset } from "../nft/ruleset/fake.ts";
import { traceAll, type Hook, type Packet, type Trace, type TraceStep } from "../nft/ruleset/trace.ts";
import type { Query } from "./packet.ts";

/**
 * The query as a packet, traced through nflb's nft table: the kernel's own text when it could be
 * read (`nft list table inet nflb`), else the table rendered from the config. The decision is the
 * tracer's walk of that table; nothing here re-implements it.
 */
export interface PathOptions {
  /** The interface the packet arrives on when the query does not say. */
  iif?: string;
  localAddresses: readonly Addr[];
}

export type Path = NonNullable<Packet["path"]>;

export function pathOf(q: Query, local: readonly Addr[]): Path {
  const isLocal = (a: Addr) => local.some((l) => l.family === a.family && l.text === a.text);
  if (q.local || isLocal(q.src)) return "output";
  return isLocal(q.dst) ? "input" : "forward";
}

export function packetOf(q: Query, o: PathOptions, path: Path): Packet {
  const p: Packet = {
    family: q.src.family,
    saddr: q.src.text,
    daddr: q.dst.text,
    path,
    localAddresses: o.localAddresses.map((a) => a.text),
  };
  if (q.proto) p.l4proto = q.proto === "icmp" ? (q.src.family === 6 ? "ipv6-icmp" : "icmp") : q.proto;
  if (q.port !== undefined) p.dport = q.port;
  if (q.sport !== undefined) p.sport = q.sport;
  const iif = q.iif ?? o.iif;
  if (iif !== undefined && path !== "output") p.iif = iif;
  return p;
}

/** Every outcome of the packet up to the routing decision (and through input, for the router itself). */
export function tracePacket(rulesetText: string, pkt: Packet): Trace[] {
  const hooks: Hook[] =
    pkt.path === "output" ? ["output"] : pkt.path === "input" ? ["prerouting", "input"] : ["prerouting"];
  // One parse per table text: a maglev table has tens of thousands of elements, and a test or a
  // script asks many questions of the same table (the walk never changes it).
  if (cached?.text !== rulesetText) cached = { text: rulesetText, ruleset: parseRuleset(rulesetText) };
  return traceAll(cached.ruleset, pkt, { hooks });
}

let cached: { text: string; ruleset: Ruleset } | null = null;

/** A step of the walk for people: the chain, the rule, and what it did. */
export function stepLine(s: TraceStep): string {
  if (s.unknown)
    return `${s.chain}: \`${s.rule}\` needs ${s.unknown}, which the question leaves open: taken as not matching`;
  return `${s.chain}: \`${s.rule}\`${s.effects.length ? ` → ${s.effects.join(", ")}` : ""}`;
}
