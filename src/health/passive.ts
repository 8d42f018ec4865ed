import { passiveOf, type Config } from "../config/schema.ts";
import { formatHostPort, parseHostPort } from "../net/ip.ts";
import { flowServiceKey } from "../system/conntrack-events.ts";
import type { FlowOutcome } from "./flow-table.ts";

/** A backend the passive check takes down, and why in words. */
export interface PassiveVerdict {
  service: string;
  /** As written in the config. */
  backend: string;
  reason: string;
}

interface Watched {
  name: string;
  fall: number;
  window: number;
  /** canonical ADDRESS:PORT → as written in the config */
  backends: Map<string, string>;
}

/**
 * Passive health (HAProxy's `observe layer4`): each backend's latest `window` new TCP connections,
 * as conntrack saw their handshakes end; `fall` failures among them (refused or unanswered) take
 * the backend down. The window starts empty again whenever the backend comes back, so an old
 * failure never counts twice, and a single reset never takes a backend down (fall ≥ 2 by default
 * 5). Pure: fed FlowOutcomes, answers verdicts.
 */
export class PassiveHealth {
  private services = new Map<string, Watched>();
  private readonly windows = new Map<string, FlowOutcome["result"][]>();

  /** Follow the config's `check.passive` settings; windows of backends that stay are kept. */
  configure(c: Config): void {
    const next = new Map<string, Watched>();
    const keep = new Set<string>();
    for (const [name, s] of Object.entries(c.services ?? {})) {
      const p = passiveOf(s.check);
      const listen = parseHostPort(s.listen);
      if (!p || s.protocol !== "tcp" || "error" in listen) continue;
      const backends = new Map<string, string>();
      for (const b of s.backends) {
        const hp = parseHostPort(b.address);
        if ("error" in hp) continue;
        backends.set(formatHostPort(hp.addr, hp.port), b.address);
        keep.add(`${name}\0${b.address}`);
      }
      next.set(flowServiceKey("tcp", listen.addr.text, listen.port), {
        name,
        fall: p.fall,
        window: p.window,
        backends,
      });
    }
    this.services = next;
    for (const k of this.windows.keys()) if (!keep.has(k)) this.windows.delete(k);
  }

  /** The shortest SYN timeout of the passive services (null: none is watched). */
  static synTimeout(c: Config): number | null {
    let ms: number | null = null;
    for (const s of Object.values(c.services ?? {})) {
      const p = passiveOf(s.check);
      if (p && s.protocol === "tcp") ms = Math.min(ms ?? p.timeout, p.timeout);
    }
    return ms;
  }

  record(o: FlowOutcome): PassiveVerdict | null {
    const w = this.services.get(o.service);
    const backend = w?.backends.get(o.backend);
    if (!w || backend === undefined) return null;
    const k = `${w.name}\0${backend}`;
    let seen = this.windows.get(k);
    if (!seen) this.windows.set(k, (seen = []));
    seen.push(o.result);
    if (seen.length > w.window) seen.shift();
    if (o.result === "ok") return null;
    const refused = seen.filter((r) => r === "refused").length;
    const timedOut = seen.filter((r) => r === "timeout").length;
    if (refused + timedOut < w.fall) return null;
    this.windows.delete(k);
    const what =
      timedOut === 0
        ? `${refused} of ${seen.length} new connections refused`
        : refused === 0
          ? `${timedOut} of ${seen.length} new connections unanswered`
          : `${refused + timedOut} of ${seen.length} new connections failed (${refused} refused, ${timedOut} unanswered)`;
    return { service: w.name, backend, reason: `passive: ${what}` };
  }

  /** Start a backend's window afresh (it came back up, or was taken down by something else). */
  reset(service: string, backend: string): void {
    this.windows.delete(`${service}\0${backend}`);
  }
}
