// The demo lab: the uplink lab plus web servers behind the router, so one `nflb run` shows
// outgoing balancing and a service (DNAT) side by side.
//
//   lan ── router ── wan1..3 ── isp1..3 ── inet
//            └ srv0 ── srv: 198.51.100.11, .12, .13 (one echo server each, answering "webN PEER")
import { ipBatch } from "./netns.ts";
import type { TrackedProcess } from "./processes.ts";
import { UplinkLab, type UplinkLabOptions } from "./uplink-lab.ts";

export const DEMO_BACKENDS = {
  /** The router's interface toward the backends, and its address there (the backends' gateway). */
  routerIf: "srv0",
  router4: "198.51.100.1",
  prefixLen: 24,
  port: 80,
} as const;

export const MAX_DEMO_BACKENDS = 8;

/** Backend i (1-based) listens on 198.51.100.(10+i):80 and calls itself `web<i>`. */
export function demoBackend(i: number): { name: string; address: string; port: number } {
  if (!Number.isInteger(i) || i < 1 || i > MAX_DEMO_BACKENDS)
    throw new Error(`backend index must be 1..${MAX_DEMO_BACKENDS}, got ${i}`);
  return { name: `web${i}`, address: `198.51.100.${10 + i}`, port: DEMO_BACKENDS.port };
}

export interface DemoLabOptions extends UplinkLabOptions {
  /** Web servers in the `srv` namespace (1..8). */
  backends: number;
}

export class DemoLab extends UplinkLab {
  readonly backendCount: number;
  private readonly backendProcs = new Map<number, TrackedProcess>();

  constructor(opts: DemoLabOptions) {
    super(opts);
    if (!Number.isInteger(opts.backends) || opts.backends < 1 || opts.backends > MAX_DEMO_BACKENDS)
      throw new Error(`backends must be 1..${MAX_DEMO_BACKENDS}`);
    this.backendCount = opts.backends;
  }

  /** `ADDRESS:PORT` of every backend, in order. */
  get backends(): string[] {
    return Array.from({ length: this.backendCount }, (_, k) => {
      const b = demoBackend(k + 1);
      return `${b.address}:${b.port}`;
    });
  }

  override async build(): Promise<this> {
    await super.build();
    await this.addBackends();
    return this;
  }

  /** Start web server i again after stopBackend(i). */
  async startBackend(i: number): Promise<TrackedProcess> {
    if (this.backendProcs.has(i)) throw new Error(`backend ${i} already runs`);
    const b = demoBackend(i);
    if (i > this.backendCount) throw new Error(`lab has no backend ${i}`);
    const proc = await this.startEchoServer({
      role: "srv",
      name: b.name,
      tcp: [{ address: b.address, port: b.port }],
    });
    this.backendProcs.set(i, proc);
    return proc;
  }

  /** Stop web server i (its health check then fails and the service stops sending it connections). */
  async stopBackend(i: number): Promise<void> {
    const p = this.backendProcs.get(i);
    this.backendProcs.delete(i);
    await p?.stop(1000);
  }

  private async addBackends(): Promise<void> {
    const srv = await this.addRole("srv");
    this.check();
    const B = DEMO_BACKENDS;
    await ipBatch(undefined, [
      `link add name ${B.routerIf} netns ${this.netns("router")} type veth peer name eth0 netns ${srv}`,
    ]);
    await Promise.all([
      ipBatch(this.netns("router"), [
        `addr add ${B.router4}/${B.prefixLen} dev ${B.routerIf}`,
        `link set ${B.routerIf} up`,
      ]),
      ipBatch(srv, [
        ...Array.from(
          { length: this.backendCount },
          (_, k) => `addr add ${demoBackend(k + 1).address}/${B.prefixLen} dev eth0`,
        ),
        "link set eth0 up",
        `route add default via ${B.router4}`,
      ]),
    ]);
    this.check();
    for (let i = 1; i <= this.backendCount; i++) await this.startBackend(i);
  }
}
