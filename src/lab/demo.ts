// The demo: a DemoLab, an example config that shows uplinks, a rule and a service, and
// `nflb run` in the router serving the dashboard on the host link. Used by `nflb lab up` (through
// a long-lived keeper process) and by the browser tests (in-process).
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoPath } from "../paths.ts";
import { HOST_LINK, INTERNET, PORTS, type UplinkPlan } from "./addressing.ts";
import { DemoLab } from "./demo-backends.ts";
import type { TrackedProcess } from "./processes.ts";
import type { TrafficTarget } from "./demo-traffic.ts";

export const DEMO = {
  uplinks: 3,
  /** 3:2:1, so the split is easy to tell apart on the dashboard. */
  weights: [3, 2, 1],
  backends: 3,
  service: "web",
  vip: "192.0.2.80",
  servicePort: 80,
  apiPort: 9110,
  /** The example rule: TLS sessions keep one public address (first healthy of isp2, isp1). */
  rule: { name: "tls-one-address", port: PORTS.tcp, via: ["isp2", "isp1"] },
} as const;

export const NFLB_BIN = repoPath("bin/nflb");

/** Where the daemon listens: the router's end of the host link, so a browser on the host reaches it. */
export const DEMO_API = `${HOST_LINK.router4}:${DEMO.apiPort}`;
export const DEMO_URL = `http://${DEMO_API}/`;

export function newToken(): string {
  return randomBytes(12).toString("base64url");
}

/** The demo's config: every uplink probed through its own ISP, a rule, a service with health checks. */
export function demoConfig(o: {
  uplinks: readonly UplinkPlan[];
  backends: readonly string[];
  token: string;
}): string {
  const uplinks = o.uplinks.map(
    (u, i) => `  isp${u.index}:
    interface: ${u.wanIf}
    gateway: ${u.gateway4}
    weight: ${DEMO.weights[i] ?? 1}
    probe:
      method: icmp
      targets: [${INTERNET.targets4.join(", ")}]
      interval: 200ms
      timeout: 500ms
      down_after: 3
      up_after: 10`,
  );
  return `# nflb demo (written by \`nflb lab up\`): three ISPs 3:2:1, one exception rule, one service.
version: 1
uplinks:
${uplinks.join("\n")}
balance:
  from: [lan0]
  method: random
  primary: [${o.uplinks.map((u) => `isp${u.index}`).join(", ")}]
rules:
  - name: ${DEMO.rule.name}
    protocol: tcp
    port: ${DEMO.rule.port}
    via: [${DEMO.rule.via.join(", ")}]
services:
  ${DEMO.service}:
    listen: ${DEMO.vip}:${DEMO.servicePort}
    protocol: tcp
    scheduler: round-robin
    check: { method: tcp, interval: 1s, timeout: 500ms, rise: 2, fall: 3 }
    backends:
${o.backends.map((b) => `      - { address: ${b}, weight: 1 }`).join("\n")}
api:
  listen: ${DEMO_API}
  token: ${o.token}
`;
}

/** What `lab traffic` sends by default: mostly balanced, some through the rule, some to the service. */
export function demoTrafficTargets(): TrafficTarget[] {
  return [
    { label: "internet", address: INTERNET.server4, port: PORTS.echo, weight: 6 },
    { label: DEMO.rule.name, address: INTERNET.server4, port: PORTS.tcp, weight: 1 },
    { label: `service ${DEMO.service}`, address: DEMO.vip, port: DEMO.servicePort, weight: 3 },
  ];
}

export interface DemoOptions {
  /** A lab from newDemoLab(), not built yet (lets the caller record its prefix first). */
  lab?: DemoLab;
  /** Config, state and (when a keeper runs it) logs go here; a temp dir removed by destroy() when absent. */
  dir?: string;
  token?: string;
  onProgress?: (message: string) => void;
  /** Every chunk the daemon writes (stdout and stderr), e.g. to keep a log file. */
  onDaemonOutput?: (chunk: string) => void;
  /** Wait this long for the API to answer (default 60 s). */
  apiTimeoutMs?: number;
}

export interface Demo {
  readonly lab: DemoLab;
  readonly daemon: TrackedProcess;
  readonly url: string;
  /** HOST:PORT of the API. */
  readonly api: string;
  readonly token: string;
  readonly configFile: string;
  readonly dir: string;
  /** Stop the daemon and every lab process, delete the namespaces and the host link. */
  destroy(): Promise<void>;
}

export function newDemoLab(): DemoLab {
  return new DemoLab({ uplinks: DEMO.uplinks, backends: DEMO.backends, hostLink: true });
}

/** Build the lab, start the backends and `nflb run`, and wait until the API answers. */
export async function startDemo(o: DemoOptions = {}): Promise<Demo> {
  const say = o.onProgress ?? (() => undefined);
  const lab = o.lab ?? newDemoLab();
  const ownDir = o.dir === undefined;
  const dir = o.dir ?? (await mkdtemp(join(tmpdir(), "nflb-demo-")));
  const destroy = async () => {
    await lab.destroy();
    if (ownDir) await rm(dir, { recursive: true, force: true });
  };
  try {
    say(
      `building namespaces ${lab.prefix}*: LAN client, router, isp1–isp${DEMO.uplinks}, internet, ${DEMO.backends} web servers`,
    );
    await lab.build();
    const token = o.token ?? newToken();
    const configFile = join(dir, "nflb.yaml");
    await writeFile(configFile, demoConfig({ uplinks: lab.uplinks, backends: lab.backends, token }), {
      mode: 0o600,
    });
    say(`starting nflb run in ${lab.ns.router} (config ${configFile})`);
    const daemon = lab.spawn("router", [
      // `env` execs in place: the pid stays the daemon's. State goes next to the config, so
      // removing the demo leaves nothing behind in /run/nflb.
      "env",
      `NFLB_STATE_DIR=${join(dir, "state")}`,
      NFLB_BIN,
      "run",
      "-c",
      configFile,
      "--api",
      DEMO_API,
    ]);
    if (o.onDaemonOutput) {
      daemon.child.stdout?.on("data", o.onDaemonOutput);
      daemon.child.stderr?.on("data", o.onDaemonOutput);
    }
    say(`waiting for the API at ${DEMO_URL}`);
    await waitForApi(DEMO_URL, daemon, o.apiTimeoutMs ?? 60_000);
    return { lab, daemon, url: DEMO_URL, api: DEMO_API, token, configFile, dir, destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}

/** Poll `GET /api/v1/status` until it answers 200; fail early when the daemon exits. */
export async function waitForApi(url: string, daemon: TrackedProcess, timeoutMs: number): Promise<void> {
  let exited: number | undefined;
  void daemon.exited.then((c) => (exited = c));
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new Error(`nflb run exited ${exited}: ${tail(daemon)}`);
    try {
      const res = await fetch(new URL("api/v1/status", url), { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the API at ${url} did not answer within ${timeoutMs} ms (${last}): ${tail(daemon)}`);
}

function tail(p: TrackedProcess): string {
  return (p.stderr() + p.stdout()).trim().split("\n").slice(-15).join("\n");
}
