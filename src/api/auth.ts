import { createHash, timingSafeEqual } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import { parseAddr } from "../net/ip.ts";

export type AuthResult = { ok: true } | { ok: false; status: 401 | 403; error: string };

/** 127.0.0.0/8, ::1 and IPv4-mapped 127.x: the machine itself. */
export function isLoopback(addr: string | undefined): boolean {
  if (!addr) return false;
  const v4 = addr.startsWith("::ffff:") ? addr.slice(7) : addr;
  if (isIPv4(v4)) return v4.startsWith("127.");
  return isIPv6(addr) && parseAddr(addr)?.text === "::1";
}

export function sameSecret(a: string, b: string): boolean {
  // Hash first: timingSafeEqual needs equal lengths, and the length must not leak either.
  const h = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

/** Where the daemon answers: the socket it listens on, and names an admin declared (`api.hosts`). */
export interface Served {
  /** The bound address (`0.0.0.0`/`::` for every address), or null when not listening (tests). */
  address: string | null;
  port: number | null;
  /** `NAME` or `NAME:PORT` (a reverse proxy or port forward may use another port). */
  names: readonly string[];
}

/** The parts of a request the checks read; header values as node gives them. */
export interface RequestFacts {
  method: string;
  authorization?: string;
  remoteAddress?: string;
  origin?: string;
  host?: string;
  /** Sec-Fetch-Site: sent by browsers only (node's fetch sends Sec-Fetch-Mode, not this). */
  fetchSite?: string;
  /** The X-NFLB-CSRF header. */
  csrf?: string;
}

export const CSRF_HEADER = "x-nflb-csrf";

/** A request made by a web page: it names an Origin (even "null") or says how it was fetched. */
export function fromBrowser(r: RequestFacts): boolean {
  return r.origin !== undefined || r.fetchSite !== undefined;
}

function splitHost(host: string): { name: string; port: number | null } | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(host);
  if (!m?.[1]) return null;
  const name = m[1].startsWith("[") ? m[1].slice(1, -1) : m[1].toLowerCase();
  return { name, port: m[2] === undefined ? null : Number(m[2]) };
}

/**
 * Is `host` (a Host header) one this daemon serves? A DNS name an attacker controls can be made to
 * resolve to 127.0.0.1 (DNS rebinding); then the browser treats the attacker's page and the daemon
 * as one origin, and only the Host header tells them apart. So: IP literals the socket answers on,
 * `localhost`, and names declared in `api.hosts` — nothing else.
 */
export function hostServed(host: string | undefined, served: Served): boolean {
  if (!host) return false;
  const h = splitHost(host);
  if (!h) return false;
  const port = h.port ?? 80;
  for (const n of served.names) {
    const d = splitHost(n);
    if (d && d.name === h.name && (d.port === null ? portOk(port, served) : d.port === port)) return true;
  }
  if (!portOk(port, served)) return false;
  if (h.name === "localhost") return true;
  const ip = parseAddr(h.name);
  if (!ip) return false;
  if (isLoopback(ip.text)) return true;
  if (served.address === null) return false;
  const bound = parseAddr(served.address);
  // A wildcard socket answers on every address of the machine; an IP literal cannot be rebound.
  if (!bound || bound.text === "0.0.0.0" || bound.text === "::") return true;
  return bound.text === ip.text;
}

function portOk(port: number, served: Served): boolean {
  return served.port === null || served.port === port;
}

/** The daemon's own origin, as a browser names it: this scheme and exactly the Host it asked for. */
export function ownOrigin(origin: string, host: string | undefined): boolean {
  return host !== undefined && origin.toLowerCase() === `http://${host.toLowerCase()}`;
}

function bearerOk(token: string, authorization: string | undefined): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  return m?.[1] !== undefined && sameSecret(m[1], token);
}

/**
 * Who may talk to the API at all (every request): a client that presents the token; otherwise the
 * Host must be one the daemon serves (reads by scripts such as Prometheus excepted: `hostFree`),
 * and a web page must be the daemon's own (`Origin: null`, sent by sandboxed frames and data:
 * URLs, is foreign).
 */
export function admit(token: string | null, r: RequestFacts, served: Served, hostFree: boolean): AuthResult {
  if (token && bearerOk(token, r.authorization)) return { ok: true };
  const browser = fromBrowser(r);
  if ((browser || !hostFree) && !hostServed(r.host, served))
    return {
      ok: false,
      status: 403,
      error: `Host ${JSON.stringify(r.host ?? "")} is not an address of this daemon (add the name to api.hosts)`,
    };
  if (r.origin !== undefined && !ownOrigin(r.origin, r.host))
    return { ok: false, status: 403, error: "cross-origin request refused" };
  return { ok: true };
}

/**
 * Who may change state: with a token, whoever presents it (from anywhere); without one, only the
 * machine itself — and a web page only when it is the dashboard this daemon served, which echoes
 * the per-start secret embedded in it (a page elsewhere cannot read it).
 */
export function authorize(
  token: string | null,
  csrfSecret: string,
  r: RequestFacts,
  served: Served,
): AuthResult {
  const admitted = admit(token, r, served, false);
  if (!admitted.ok) return admitted;
  if (token) {
    if (bearerOk(token, r.authorization)) return { ok: true };
    return { ok: false, status: 401, error: "missing or wrong bearer token" };
  }
  if (!isLoopback(r.remoteAddress))
    return {
      ok: false,
      status: 403,
      error:
        "no API token is configured (api.token or NFLB_API_TOKEN): changes are accepted from loopback only",
    };
  if (fromBrowser(r) && !(r.csrf && sameSecret(r.csrf, csrfSecret)))
    return {
      ok: false,
      status: 403,
      error: "a browser's change needs the dashboard's CSRF secret (reload the page) or the API token",
    };
  return { ok: true };
}
