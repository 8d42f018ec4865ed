// A FlowMonitor without conntrack: tests set the counts and feed handshake outcomes by hand.
import { EventEmitter } from "node:events";
import type { FlowMonitor, FlowMonitorEvents, FlowOutcome } from "../src/health/flow-monitor.ts";

export class FakeFlowMonitor extends EventEmitter<FlowMonitorEvents> implements FlowMonitor {
  started = false;
  stopped = false;
  synTimeoutMs: number | null = null;
  /** flow key (`tcp 203.0.113.10 80`) → backend (canonical) → open connections; absent: unknown. */
  readonly counts = new Map<string, Map<string, number>>();

  start(): void {
    this.started = true;
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
  open(service: string): ReadonlyMap<string, number> | null {
    return this.counts.get(service) ?? null;
  }
  setSynTimeout(ms: number | null): void {
    this.synTimeoutMs = ms;
  }
  /** Set one backend's count and tell the daemon, as the conntrack stream would. */
  set(service: string, backend: string, n: number): void {
    let m = this.counts.get(service);
    if (!m) this.counts.set(service, (m = new Map()));
    m.set(backend, n);
    this.emit("counts", new Set([service]));
  }
  outcome(o: FlowOutcome): void {
    this.emit("outcome", o);
  }
}
