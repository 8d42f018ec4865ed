// A simulated fping for unit tests and the probe bench's model: every process a prober spawns is
// played on the manual clock, in loop mode (-l) and count mode (-c N), with the lines fping 5.1
// prints. Not a test file itself (no `.test.ts`).
import { uplinkSchema } from "../src/config/schema.ts";
import { ManualClock } from "../src/health/probe-clock.ts";
import { fakeSpawn, type FakeProcess } from "./probe-fakes.ts";
import type { UplinkObservation } from "../src/health/types.ts";
import { createUplinkMonitor } from "../src/health/uplink-monitor.ts";

/**
 * Plays fping for every process the prober spawns: loop mode (-l) and count mode (-c N) on the
 * manual clock; `lost(target, sentAt)` decides each probe, answers take `rtt` ms.
 */
export class FpingSim {
  sent = 0;
  /** When the first loop-mode fping started: its rounds are sent at mainStart + k × interval. */
  mainStart = NaN;
  constructor(
    private readonly clock: ManualClock,
    private readonly lost: (target: string, at: number) => boolean,
    private readonly rtt = 1,
  ) {}

  run(p: FakeProcess): void {
    const a = p.argv;
    const opt = (f: string) => Number(a[a.indexOf(f) + 1]);
    const count = a.includes("-l") ? Infinity : opt("-c");
    const period = opt("-p");
    const timeout = opt("-t");
    const targets = a.slice(Math.max(a.lastIndexOf("-S"), a.indexOf("-I")) + 2);
    const t0 = this.clock.now();
    if (count === Infinity && Number.isNaN(this.mainStart)) this.mainStart = t0;
    let lostAny = false;
    const send = (k: number) => {
      if (!p.alive || k >= count) return;
      const at = this.clock.now();
      for (const t of targets) {
        this.sent++;
        const lost = this.lost(t, at);
        lostAny ||= lost;
        this.clock.setTimeout(
          () => {
            if (!p.alive) return;
            p.line(
              lost
                ? `${t} : [${k}], timed out (1 avg, 0% loss)`
                : `${t} : [${k}], 64 bytes, ${this.rtt} ms (1 avg, 0% loss)`,
            );
            if (k === count - 1 && t === targets[targets.length - 1]) p.exit(lostAny ? 1 : 0);
          },
          lost ? timeout : this.rtt,
        );
      }
      this.clock.setTimeout(() => send(k + 1), t0 + (k + 1) * period - this.clock.now());
    };
    send(0);
  }
}

export const settle = async () => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};

/**
 * One uplink monitor (ICMP, fping prober, bursts) against FpingSim: `lost(target, sentAt)` decides
 * each probe; `probe` overrides probe settings. Call `m.start()`, then `run(ms)`.
 */
export function simulatedUplink(o: {
  targets: readonly string[];
  lost: (target: string, at: number) => boolean;
  probe?: Record<string, unknown>;
  rttMs?: number;
}) {
  const clock = new ManualClock(0);
  const { spawn, procs } = fakeSpawn();
  const sim = new FpingSim(clock, o.lost, o.rttMs);
  let seen = 0;
  const u = uplinkSchema.parse({
    interface: "wan1",
    gateway: "100.64.1.1",
    probe: { targets: o.targets, ...o.probe },
  });
  const logs: string[] = [];
  const m = createUplinkMonitor("isp1", u, {
    clock,
    spawn,
    addresses: ["100.64.1.2"],
    log: (msg) => logs.push(`${clock.now()} ${msg}`),
  });
  const changes: UplinkObservation[] = [];
  m.on("change", (o) => changes.push(o));
  const bursts = () => procs.filter((p) => p.argv.includes("-c"));
  /** Advance in small steps, letting process exits (promises) through, and start new fakes. */
  const run = async (ms: number, step = 10) => {
    for (let t = 0; t < ms; t += step) {
      clock.advance(step);
      await settle();
      for (; seen < procs.length; seen++) sim.run(procs[seen] as FakeProcess);
    }
  };
  return { clock, procs, m, changes, bursts, run, sim, logs };
}

/** xorshift32: deterministic loss patterns. */
export function prng(seed: number): () => number {
  let x = seed * 2654435761;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
