import { EventEmitter } from "node:events";
import type { UplinkConfig } from "../config/schema.ts";
import { parseAddr } from "../net/ip.ts";
import type {
  FamilyObservation,
  PassiveCheck,
  UplinkMonitor,
  UplinkMonitorEvents,
  UplinkObservation,
} from "./types.ts";

/**
 * Per-family health. An uplink's IPv4 and IPv6 fail separately (a broken IPv6 gateway is common),
 * so an uplink whose `probe.targets` hold both families gets one monitor per family, each probing
 * only its own targets with its own state machine, fast re-probe and link events: a family goes
 * down and comes back on the same sub-second schedule as a whole uplink did. The uplink is up while
 * either family is; `families` says which.
 *
 * An uplink whose targets are all of one family is judged by that family alone, as before: the
 * other family has no evidence of its own and follows it (`probed: false`).
 */

export type Family = 4 | 6;

/** The families of an uplink's probe targets, IPv4 first (names that do not parse count as IPv4). */
export function targetFamilies(u: UplinkConfig): Family[] {
  const fams = new Set<Family>(u.probe.targets.map((t) => parseAddr(t)?.family ?? 4));
  return ([4, 6] as const).filter((f) => fams.has(f));
}

/** The uplink's config with only one family's probe targets. */
export function withFamilyTargets(u: UplinkConfig, fam: Family): UplinkConfig {
  const targets = u.probe.targets.filter((t) => (parseAddr(t)?.family ?? 4) === fam);
  return { ...u, probe: { ...u.probe, targets } };
}

function familyOf(o: UplinkObservation, probed: boolean): FamilyObservation {
  return {
    state: o.state,
    reason: o.reason,
    rttMs: o.rttMs,
    loss: o.loss,
    since: o.since,
    probed,
    ...(o.probeError !== undefined ? { probeError: o.probeError } : {}),
  };
}

/**
 * One uplink's observation from its families' (IPv4's figures first: the RTT, loss and quality
 * `weights: auto` uses are of the family most traffic takes, while it is up).
 */
export function mergeFamilies(name: string, v4: UplinkObservation, v6: UplinkObservation): UplinkObservation {
  const up4 = v4.state === "up";
  const up6 = v6.state === "up";
  const lead = up4 || !up6 ? v4 : v6;
  let reason: string;
  if (up4 && up6) reason = v4.since >= v6.since ? v4.reason : v6.reason;
  else if (up4) reason = `IPv6 down (${v6.reason}); IPv4 up`;
  else if (up6) reason = `IPv4 down (${v4.reason}); IPv6 up`;
  else reason = v4.since >= v6.since ? v4.reason : v6.reason;
  const errors = [v4.probeError, v6.probeError].filter((e): e is string => typeof e === "string" && e !== "");
  return {
    name,
    state: up4 || up6 ? "up" : "down",
    reason,
    rttMs: lead.rttMs,
    jitterMs: lead.jitterMs,
    loss: lead.loss,
    quality: lead.quality,
    // The uplink's own state changes only when both families are down or the first comes back.
    since: up4 === up6 ? Math.max(v4.since, v6.since) : (up4 ? v4 : v6).since,
    probeError: errors.length ? errors.join("; ") : null,
    families: { 4: familyOf(v4, true), 6: familyOf(v6, true) },
  };
}

/** `o` with the family it was probed by and the other one following it (single-family targets). */
export function withFollower(o: UplinkObservation, probed: Family): UplinkObservation {
  const other: Family = probed === 4 ? 6 : 4;
  const p = familyOf(o, true);
  const f: FamilyObservation = {
    ...p,
    probed: false,
    reason: `not probed (no IPv${other} targets): follows IPv${probed}`,
  };
  return { ...o, families: probed === 4 ? { 4: p, 6: f } : { 4: f, 6: p } };
}

/** Both families' monitors behind one uplink monitor. */
export class FamilyUplinkMonitor extends EventEmitter<UplinkMonitorEvents> implements UplinkMonitor {
  constructor(
    private readonly name: string,
    private readonly v4: UplinkMonitor,
    private readonly v6: UplinkMonitor,
  ) {
    super();
    for (const m of [v4, v6]) {
      m.on("change", () => this.emit("change", this.snapshot()));
      m.on("round", () => this.emit("round", this.snapshot()));
      m.on("link", () => this.emit("link", this.snapshot()));
      m.on("passive", (o) => this.emit("passive", o));
    }
  }

  /**
   * Passive health watches the uplink's connections of both families together, so one family's
   * re-probe settles a suspicion: IPv4's when it takes it, else IPv6's. Only one outcome follows;
   * a confirmed suspicion takes that family down, the other keeps following its own probes.
   */
  passiveSuspect(check: PassiveCheck): boolean {
    return (this.v4.passiveSuspect?.(check) ?? false) || (this.v6.passiveSuspect?.(check) ?? false);
  }

  start(): void {
    this.v4.start();
    this.v6.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.v4.stop(), this.v6.stop()]);
  }

  snapshot(): UplinkObservation {
    return mergeFamilies(this.name, this.v4.snapshot(), this.v6.snapshot());
  }
}
