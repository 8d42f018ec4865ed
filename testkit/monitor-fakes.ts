// A backend health monitor the tests drive by hand: `set` is a check result arriving.
import { EventEmitter } from "node:events";
import type { BackendMonitor, BackendMonitorEvents, BackendObservation } from "../src/health/types.ts";

export class FakeBackend extends EventEmitter<BackendMonitorEvents> implements BackendMonitor {
  obs: BackendObservation;
  started = false;
  stopped = false;
  constructor(service: string, backend: string) {
    super();
    this.obs = { service, backend, state: "up", reason: "check passed", since: 0 };
  }
  start() {
    this.started = true;
  }
  async stop() {
    this.stopped = true;
  }
  snapshot() {
    return this.obs;
  }
  set(state: "up" | "down", reason: string) {
    this.obs = { ...this.obs, state, reason };
    this.emit("change", this.obs);
  }
}
