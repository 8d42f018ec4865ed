import { parseDuration } from "../config/duration.ts";
import type { BackendStatus, StatusJson } from "../daemon/status.ts";
import { apiTarget, call, errorText, pathPart, type ApiTarget } from "./api-client.ts";
import { CliError } from "./exit.ts";
import { printJson, say } from "./output.ts";
import type { BackendAction, BackendOpts, ControlOpts, UplinkAction } from "./verbs-control.ts";

/** How often `--wait` asks the daemon. */
const POLL_MS = 500;

type Body = Record<string, unknown>;

async function post(t: ApiTarget, path: string, body?: unknown): Promise<Body> {
  // The answer comes once the kernel has the change: an apply may take a moment on a big table.
  const a = await call(t, "POST", path, { timeoutMs: 60_000, ...(body !== undefined ? { body } : {}) });
  if (a.code !== 200) throw new CliError(`${errorText(a)} (HTTP ${a.code})`);
  return a.body;
}

export async function uplink(action: UplinkAction, name: string, o: ControlOpts): Promise<void> {
  const t = await apiTarget(o);
  const b = await post(t, `/api/v1/uplinks/${pathPart(name)}/${action}`);
  if (o.json) return printJson({ ok: true, ...b });
  say(`uplink ${name}: ${String(b.state ?? action)}${b.changed === false ? " (unchanged)" : ""}`);
}

export async function backend(
  action: BackendAction,
  service: string,
  address: string,
  o: BackendOpts,
): Promise<void> {
  const timeoutMs = o.wait ? parseDuration(o.timeout) : 0;
  if (timeoutMs === null) throw new CliError(`--timeout ${o.timeout}: want a duration like 5m`);
  const t = await apiTarget(o);
  const b = await post(t, `/api/v1/services/${pathPart(service)}/backends/${pathPart(address)}/${action}`);
  // The daemon answers with the backend's key as the config writes it: follow that one.
  const key = typeof b.backend === "string" ? b.backend : address;
  if (!o.wait) {
    if (o.json) return printJson({ ok: true, ...b });
    say(
      `backend ${service}/${key}: ${String(b.state ?? action)}${b.changed === false ? " (unchanged)" : ""}`,
    );
    return;
  }
  const done = (s: BackendStatus) => (action === "enable" ? s.state === "up" : s.connections === 0);
  const what = action === "enable" ? "to be up" : "to hold no connection";
  if (!o.json) say(`backend ${service}/${key}: ${String(b.state ?? action)}; waiting for it ${what}…`);
  const r = await waitFor(t, service, key, done, timeoutMs);
  if (!r.ok) {
    const last = r.last;
    const detail =
      last === null
        ? "the daemon no longer reports it"
        : action === "enable"
          ? `state ${last.state}${last.reason ? ` (${last.reason})` : ""}`
          : last.connections === null
            ? "its connections cannot be counted (conntrack)"
            : `${last.connections} connection(s) left`;
    throw new CliError(`backend ${service}/${key}: not done after ${o.timeout}: ${detail}`);
  }
  if (o.json) return printJson({ ok: true, ...b, waited_ms: r.waitedMs, backend_status: r.last });
  say(`backend ${service}/${key}: done after ${(r.waitedMs / 1000).toFixed(1)} s`);
}

export async function weight(service: string, address: string, w: string, o: ControlOpts): Promise<void> {
  const n = Number(w);
  if (!/^\d+$/.test(w) || n > 10_000) throw new CliError(`weight ${w}: want an integer 0..10000`);
  const t = await apiTarget(o);
  const b = await post(t, `/api/v1/services/${pathPart(service)}/backends/${pathPart(address)}/weight`, {
    weight: n,
  });
  if (o.json) return printJson({ ok: true, ...b });
  say(`backend ${service}/${String(b.backend ?? address)}: weight ${n}`);
}

/** Poll the daemon's status until `done` holds for the backend, or the time is up. */
export async function waitFor(
  t: ApiTarget,
  service: string,
  key: string,
  done: (b: BackendStatus) => boolean,
  timeoutMs: number,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<{ ok: boolean; last: BackendStatus | null; waitedMs: number }> {
  const t0 = Date.now();
  let last: BackendStatus | null = null;
  for (;;) {
    const a = await call<StatusJson>(t, "GET", "/api/v1/status", { timeoutMs: 5000 });
    if (a.code !== 200) throw new CliError(`status: ${errorText(a)}`);
    last = a.body.services.find((s) => s.name === service)?.backends.find((x) => x.address === key) ?? null;
    const waitedMs = Date.now() - t0;
    if (last && done(last)) return { ok: true, last, waitedMs };
    if (waitedMs >= timeoutMs) return { ok: false, last, waitedMs };
    await sleep(Math.min(POLL_MS, timeoutMs - waitedMs));
  }
}
