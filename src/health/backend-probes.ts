import { request } from "node:http";
import { connect } from "node:net";
import { formatHostPort, type Addr } from "../net/ip.ts";

/** What one backend check needs to know; built from a service's `check` block. */
export interface BackendCheckSpec {
  service: string;
  /** `ADDRESS:PORT` as written in the config. */
  backend: string;
  address: Addr;
  /** `check.port`, else the backend's own port. */
  port: number;
  method: "tcp" | "http" | "none";
  path: string;
  /** Required HTTP status; without it any 2xx or 3xx passes. */
  expectStatus?: number;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
}

export interface ProbeResult {
  ok: boolean;
  /** Why, in words: logs, events and the dashboard show it. */
  detail: string;
}

/** One check. The checker enforces the timeout and aborts `signal` when it fires. */
export type BackendProbe = (spec: BackendCheckSpec, signal: AbortSignal) => Promise<ProbeResult>;

/** `tcp`: a completed handshake passes; a refusal, reset or silence fails. */
export function tcpCheck(spec: BackendCheckSpec, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const sock = connect({ host: spec.address.text, port: spec.port, family: spec.address.family });
    const finish = (r: ProbeResult) => {
      signal.removeEventListener("abort", onAbort);
      sock.destroy();
      resolve(r);
    };
    const onAbort = () => finish({ ok: false, detail: "tcp: aborted" });
    signal.addEventListener("abort", onAbort, { once: true });
    sock.once("connect", () => finish({ ok: true, detail: "tcp: connected" }));
    sock.once("error", (e: NodeJS.ErrnoException) =>
      finish({ ok: false, detail: `tcp: ${e.code ?? e.message}` }),
    );
  });
}

/** `http`: GET `path`; passes on `expect_status`, or any 2xx/3xx when none is given. */
export function httpCheck(spec: BackendCheckSpec, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ProbeResult) => {
      if (done) return;
      done = true;
      req.destroy();
      resolve(r);
    };
    const req = request({
      host: spec.address.text,
      port: spec.port,
      path: spec.path,
      method: "GET",
      family: spec.address.family,
      signal,
      // A fresh connection per check: a pooled one would hide a server that stopped accepting.
      agent: false,
      headers: {
        host: formatHostPort(spec.address, spec.port),
        "user-agent": "nflb-check",
        connection: "close",
      },
    });
    req.once("response", (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      const ok =
        spec.expectStatus !== undefined ? status === spec.expectStatus : status >= 200 && status < 400;
      const want = spec.expectStatus !== undefined ? ` (want ${spec.expectStatus})` : "";
      finish({ ok, detail: `http: status ${status}${want}` });
    });
    req.once("error", (e: NodeJS.ErrnoException) =>
      finish({ ok: false, detail: `http: ${e.name === "AbortError" ? "aborted" : (e.code ?? e.message)}` }),
    );
    req.end();
  });
}

export const defaultProbe: BackendProbe = (spec, signal) =>
  spec.method === "http" ? httpCheck(spec, signal) : tcpCheck(spec, signal);
