import type { FlowEvent } from "../system/conntrack-events.ts";

/**
 * The services' flows as conntrack reports them, kept up to date event by event: how many
 * connections each backend holds now (least-conn, status) and how each new TCP connection ended
 * its handshake (passive health). Every event costs O(1), and reading a service's counts costs
 * O(its backends), however many connections are tracked. Pure: time comes in as an argument.
 */
export interface FlowOutcome {
  service: string;
  backend: string;
  /** ok: the backend answered the SYN; refused: it reset it; timeout: no answer in time. */
  result: "ok" | "refused" | "timeout";
}

/** A flow's code, in its low 2 bits: SYN and OPEN count as open connections, CLOSED does not. */
const SYN = 0;
const OPEN = 1;
const CLOSED = 2;
/** TCP states that hold a backend's attention; the closing ones (FIN_WAIT, TIME_WAIT, …) do not. */
const ANSWERED = new Set(["SYN_RECV", "ESTABLISHED"]);
/** Distinct (service, backend) pairs kept; DNAT flows beyond that (not nflb's) are not counted. */
export const MAX_FLOW_KEYS = 65_536;

export class FlowTable {
  private readonly keys = new Map<string, number>();
  private readonly keyService: string[] = [];
  private readonly keyBackend: string[] = [];
  private readonly counts: number[] = [];
  private readonly byService = new Map<string, Map<string, number>>();
  /** conntrack id → key index × 4 + code. Numbers only: 100,000 flows cost a few MB. */
  private readonly flows = new Map<number, number>();
  /** Flows whose SYN is not answered yet: id → when it was seen. */
  private readonly pending = new Map<number, number>();

  get size(): number {
    return this.flows.size;
  }

  /** Connections open now per backend of a service; empty when none was seen. */
  open(service: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const [backend, k] of this.byService.get(service) ?? []) out.set(backend, this.counts[k] ?? 0);
    return out;
  }

  /** Services with at least one flow seen since this table began. */
  services(): string[] {
    return [...this.byService.keys()];
  }

  /** One event; returns the end of a TCP handshake when this event concludes one. */
  apply(e: FlowEvent, now: number): FlowOutcome | null {
    const prev = this.flows.get(e.id);
    if (e.type === "destroy") {
      if (prev === undefined) return null;
      this.flows.delete(e.id);
      this.uncount(prev);
      const wasPending = this.pending.delete(e.id);
      // A SYN that never got its SYN-ACK: reset (CLOSE) or timed out in conntrack (SYN_SENT).
      if (e.protocol === "tcp" && wasPending && (prev & 3) === SYN)
        return this.outcome(prev >> 2, e.state === "CLOSE" ? "refused" : "timeout");
      return null;
    }
    const k = prev !== undefined ? prev >> 2 : this.key(e.service, e.backend);
    if (k === null) return null;
    const code =
      e.protocol === "udp"
        ? OPEN
        : e.state === "SYN_SENT"
          ? SYN
          : ANSWERED.has(e.state ?? "")
            ? OPEN
            : CLOSED;
    if (prev === undefined) {
      this.flows.set(e.id, k * 4 + code);
      if (code !== CLOSED) this.counts[k] = (this.counts[k] ?? 0) + 1;
      if (code === SYN) this.pending.set(e.id, now);
      return null;
    }
    const before = prev & 3;
    if (before === code) return null;
    // Once closing, a flow never opens again (a late UPDATE of an older state changes nothing).
    if (before === CLOSED) return null;
    this.flows.set(e.id, k * 4 + code);
    if (code === CLOSED) this.uncount(prev);
    const wasPending = this.pending.delete(e.id);
    if (before !== SYN || !wasPending || e.protocol !== "tcp") return null;
    if (code === OPEN) return this.outcome(k, "ok");
    return e.state === "CLOSE" ? this.outcome(k, "refused") : null;
  }

  /** SYNs seen before `now - olderThanMs` and still unanswered: each reported once, as timed out. */
  expire(now: number, olderThanMs: number): FlowOutcome[] {
    const out: FlowOutcome[] = [];
    // Insertion order is arrival order: stop at the first one young enough.
    for (const [id, at] of this.pending) {
      if (now - at < olderThanMs) break;
      this.pending.delete(id);
      const v = this.flows.get(id);
      if (v !== undefined) out.push(this.outcome(v >> 2, "timeout"));
    }
    return out;
  }

  /** Unanswered SYNs still waiting (for the timer that expires them). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** When a flow of `other` still waits for its SYN-ACK, keep the time it was first seen. */
  adoptPending(other: FlowTable, now: number): void {
    for (const id of this.pending.keys()) this.pending.set(id, other.pending.get(id) ?? now);
    // Re-inserting keeps the oldest first for expire().
    const sorted = [...this.pending].sort((a, b) => a[1] - b[1]);
    this.pending.clear();
    for (const [id, at] of sorted) this.pending.set(id, at);
  }

  private uncount(v: number): void {
    if ((v & 3) === CLOSED) return;
    const k = v >> 2;
    this.counts[k] = Math.max(0, (this.counts[k] ?? 0) - 1);
  }

  private outcome(k: number, result: FlowOutcome["result"]): FlowOutcome {
    return { service: this.keyService[k] ?? "", backend: this.keyBackend[k] ?? "", result };
  }

  private key(service: string, backend: string): number | null {
    const id = `${service}\0${backend}`;
    let k = this.keys.get(id);
    if (k !== undefined) return k;
    if (this.keys.size >= MAX_FLOW_KEYS) return null;
    k = this.keys.size;
    this.keys.set(id, k);
    this.keyService.push(service);
    this.keyBackend.push(backend);
    this.counts.push(0);
    let m = this.byService.get(service);
    if (!m) this.byService.set(service, (m = new Map()));
    m.set(backend, k);
    return k;
  }
}
