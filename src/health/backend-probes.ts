import { readFile } from "node:fs/promises";
import { request, type ClientRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect, isIP } from "node:net";
import { formatHostPort, type Addr } from "../net/ip.ts";

/** What one backend check needs to know; built from a service's `check` block. */
export interface BackendCheckSpec {
  service: string;
  /** `ADDRESS:PORT` as written in the config. */
  backend: string;
  address: Addr;
  /** `check.port`, else the backend's own port. */
  port: number;
  method: "tcp" | "http" | "https" | "none";
  path: string;
  /** Required HTTP status; without it any 2xx or 3xx passes. */
  expectStatus?: number;
  /** Host header; default the backend's ADDRESS:PORT. */
  host?: string;
  /** HTTPS: the TLS server name; default `host`'s name part when it is a name, else none. */
  sni?: string;
  /** The first BODY_LIMIT bytes of the body must contain this. */
  expectBody?: string;
  /** HTTPS: PEM CA file; when set the backend's certificate is verified (against `sni`). */
  ca?: string;
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

/** How much of a body an `expect_body` check reads at most: a health page, not a download. */
export const BODY_LIMIT = 64 * 1024;

/**
 * `http` / `https`: GET `path` with `host` as the Host header; passes on `expect_status` (or any
 * 2xx/3xx) and, with `expect_body`, when the first 64 KiB of the body contain it. The checker's
 * timeout aborts `signal`, which ends the request wherever it is (handshake, headers or body).
 *
 * HTTPS does not verify the backend's certificate unless `ca` is given: the check asks whether
 * the server at a configured address answers as it should, not who it is; backends commonly hold
 * certificates for the public name (not their address), self-signed or internal ones, and a check
 * that fails on those would take healthy backends out of service. With `ca` the chain and the
 * name (`sni`) are verified, and a failure is a failed check.
 */
export function httpCheck(spec: BackendCheckSpec, signal: AbortSignal): Promise<ProbeResult> {
  const scheme = spec.method === "https" ? "https" : "http";
  if (spec.method === "https" && spec.ca)
    return caOf(spec.ca).then(
      (ca) => webCheck(spec, signal, scheme, ca),
      (e: NodeJS.ErrnoException) => ({
        ok: false,
        detail: `https: ca ${spec.ca ?? ""}: ${e.code ?? e.message}`,
      }),
    );
  return webCheck(spec, signal, scheme, undefined);
}

function webCheck(
  spec: BackendCheckSpec,
  signal: AbortSignal,
  scheme: "http" | "https",
  ca: Buffer | undefined,
): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    let req: ClientRequest | undefined;
    const finish = (r: ProbeResult) => {
      if (done) return;
      done = true;
      req?.destroy();
      resolve(r);
    };
    const options = {
      host: spec.address.text,
      port: spec.port,
      path: spec.path,
      method: "GET",
      family: spec.address.family,
      signal,
      // A fresh connection per check: a pooled one would hide a server that stopped accepting.
      agent: false as const,
      headers: {
        host: spec.host ?? formatHostPort(spec.address, spec.port),
        "user-agent": "nflb-check",
        connection: "close",
      },
    };
    try {
      req =
        scheme === "https"
          ? httpsRequest({
              ...options,
              servername: serverName(spec),
              rejectUnauthorized: ca !== undefined,
              ...(ca ? { ca } : {}),
            })
          : request(options);
    } catch (e) {
      finish({ ok: false, detail: `${scheme}: ${(e as Error).message}` });
      return;
    }
    req.once("response", (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      const ok =
        spec.expectStatus !== undefined ? status === spec.expectStatus : status >= 200 && status < 400;
      const want = spec.expectStatus !== undefined ? ` (want ${spec.expectStatus})` : "";
      const detail = `${scheme}: status ${status}${want}`;
      if (!ok || spec.expectBody === undefined) {
        res.resume();
        finish({ ok, detail });
        return;
      }
      bodyContains(res, spec.expectBody, (found, why) =>
        finish({ ok: found, detail: found ? `${detail}, body matches` : `${detail}, ${why}` }),
      );
    });
    req.once("error", (e: NodeJS.ErrnoException) =>
      finish({
        ok: false,
        detail: `${scheme}: ${e.name === "AbortError" ? "aborted" : (e.code ?? e.message)}`,
      }),
    );
    req.end();
  });
}

/** Reads at most BODY_LIMIT bytes; answers as soon as `want` is seen, at the end, or at the limit. */
function bodyContains(res: IncomingMessage, want: string, done: (found: boolean, why: string) => void): void {
  const needle = Buffer.from(want);
  let seen = Buffer.alloc(0);
  let over = false;
  const shown = JSON.stringify(want.length > 40 ? `${want.slice(0, 40)}…` : want);
  res.on("data", (chunk: Buffer) => {
    if (over) return;
    const room = BODY_LIMIT - seen.length;
    seen = Buffer.concat([seen, chunk.length > room ? chunk.subarray(0, room) : chunk]);
    if (seen.includes(needle)) {
      over = true;
      done(true, "");
    } else if (seen.length >= BODY_LIMIT) {
      over = true;
      done(false, `no ${shown} in the first ${BODY_LIMIT / 1024} KiB of the body`);
    }
  });
  res.once("end", () => {
    if (!over) done(false, `no ${shown} in the body`);
  });
  res.once("error", () => {
    if (!over) done(false, "body cut short");
  });
}

/** SNI: `sni`, else the Host header's name (as a browser would send it); never an address. */
export function serverName(spec: Pick<BackendCheckSpec, "sni" | "host">): string | undefined {
  if (spec.sni) return spec.sni;
  const name = spec.host?.replace(/:\d+$/, "");
  return name && !name.startsWith("[") && isIP(name) === 0 ? name : undefined;
}

/** CA files are read at most once a minute per path: a renewed CA is picked up without a reload. */
const CA_TTL_MS = 60_000;
const caCache = new Map<string, { at: number; pem: Promise<Buffer> }>();
function caOf(path: string): Promise<Buffer> {
  const hit = caCache.get(path);
  if (hit && performance.now() - hit.at < CA_TTL_MS) return hit.pem;
  const pem = readFile(path);
  caCache.set(path, { at: performance.now(), pem });
  // A missing file is tried again on the next check, not remembered as missing.
  pem.catch(() => caCache.delete(path));
  return pem;
}

export const defaultProbe: BackendProbe = (spec, signal) =>
  spec.method === "http" || spec.method === "https" ? httpCheck(spec, signal) : tcpCheck(spec, signal);
