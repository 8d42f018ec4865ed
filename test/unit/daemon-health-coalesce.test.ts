// The daemon applies a burst of backend transitions as one reconcile whose one nft transaction
// carries every one of them (src/daemon/health-burst.ts), through the Daemon itself with fake
// monitors and a fake kernel.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import type { BackendMonitor, BackendMonitorEvents, BackendObservation } from "../../src/health/types.ts";
import { Daemon } from "../../src/daemon/daemon.ts";
import type { DataplaneOps } from "../../src/daemon/reconciler.ts";
import { silentLog } from "../../src/daemon/log.ts";

const SERVICES = 20;
const BACKENDS = 50;
const addr = (s: number, b: number) => `198.18.${s}.${b + 1}:80`;

class FakeBackend extends EventEmitter<BackendMonitorEvents> implements BackendMonitor {
  obs: BackendObservation;
  constructor(service: string, backend: string) {
    super();
    this.obs = { service, backend, state: "up", reason: "", since: 0 };
  }
  start() {}
  async stop() {}
  snapshot() {
    return this.obs;
  }
  set(state: "up" | "down", reason: string) {
    this.obs = { ...this.obs, state, reason, since: Date.now() };
    this.emit("change", this.obs);
  }
}

test("1,000 backends going down at once are one reconcile and one nft transaction", async () => {
  const dir = await mkdtemp(join(tmpdir(), "nflb-coalesce-"));
  try {
    const lines = ["version: 1", "services:"];
    for (let s = 0; s < SERVICES; s++) {
      lines.push(
        `  s${s}:`,
        `    listen: 203.0.113.10:${1000 + s}`,
        "    scheduler: round-robin",
        "    backends:",
      );
      for (let b = 0; b < BACKENDS; b++) lines.push(`      - { address: ${addr(s, b)} }`);
    }
    const file = join(dir, "nflb.yaml");
    await writeFile(file, lines.join("\n") + "\n");
    const scripts: string[] = [];
    const ops: DataplaneOps = {
      readFacts: async () => ({ interfaces: new Map() }),
      applyFull: async () => undefined,
      applyNft: async (script) => void scripts.push(script),
      applyRouting: async () => undefined,
      tableExists: async () => true,
      flushConntrack: async () => 0,
      purgeSticky: async () => 0,
    };
    const backends: FakeBackend[] = [];
    const d = await Daemon.create({
      configFile: file,
      serveApi: false,
      load: loadConfig,
      log: silentLog,
      ops,
      readCounters: async () => new Map(),
      readLinkBytes: async () => null,
      factories: {
        backend: ({ service, backend }) => {
          const m = new FakeBackend(service, backend.address);
          backends.push(m);
          return m;
        },
      },
    });
    await d.start();
    await d.reconciler.idle();
    assert.equal(backends.length, SERVICES * BACKENDS);
    for (const b of backends) b.set("down", "tcp: ENETUNREACH");
    // The burst waits for its quiet time (50 ms), then runs.
    for (let i = 0; i < 100 && scripts.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await d.reconciler.idle();
    assert.equal(scripts.length, 1, "one transaction");
    const st = await d.status();
    const down = st.services.flatMap((s) => s.backends).filter((b) => b.state === "down");
    assert.equal(down.length, SERVICES * BACKENDS);
    assert.equal(d.reconciler.last?.kind, "update");
    // Every service lost all its backends in that one transaction: each now drops.
    for (let s = 0; s < SERVICES; s++)
      assert.ok(scripts[0]?.includes(`add rule inet nflb svc_s${s} drop\n`), `s${s} is in the transaction`);
    await d.stop();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
