// Helpers for unit tests that assert what nflb's ruleset does to packets (src/nft/ruleset).
import assert from "node:assert/strict";
import { NftFake, type Ruleset } from "../../src/nft/ruleset/fake.ts";
import { trace, traceAll, type Packet, type Trace, type TraceOptions } from "../../src/nft/ruleset/trace.ts";

/** A fake kernel holding `scripts`, applied in order (each one transaction, with reference checks). */
export function kernelWith(...scripts: string[]): NftFake {
  const f = new NftFake();
  for (const s of scripts) f.apply(s);
  return f;
}

/** A new TCP connection from the LAN (override any field). */
export function tcp(saddr: string, daddr: string, dport: number, more: Partial<Packet> = {}): Packet {
  return {
    family: saddr.includes(":") ? 6 : 4,
    saddr,
    daddr,
    l4proto: "tcp",
    sport: 40000,
    dport,
    iif: "lan0",
    oif: "wan9",
    ...more,
  };
}

export function udp(saddr: string, daddr: string, dport: number, more: Partial<Packet> = {}): Packet {
  return tcp(saddr, daddr, dport, { l4proto: "udp", ...more });
}

export { trace, traceAll };
export type { Packet, Ruleset, Trace, TraceOptions };

/** The DNAT a trace did, as `ADDR:PORT` (IPv6 in brackets), or null. */
export function dnatOf(t: Trace): string | null {
  const d = t.nat.find((n) => n.kind === "dnat");
  if (!d || d.kind !== "dnat") return null;
  return d.addr.includes(":") ? `[${d.addr}]:${d.port ?? ""}` : `${d.addr}:${d.port ?? ""}`;
}

/** Each outcome's key (e.g. its DNAT) with its summed share, in order of first appearance. */
export function sharesBy(all: Trace[], key: (t: Trace) => string | null): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of all) {
    const k = key(t) ?? "none";
    out[k] = Math.round(((out[k] ?? 0) + t.share) * 1e9) / 1e9;
  }
  return out;
}

export function assertOneOutcome(all: Trace[]): Trace {
  assert.equal(all.length, 1, `expected one outcome, got ${all.length}`);
  return all[0] as Trace;
}
