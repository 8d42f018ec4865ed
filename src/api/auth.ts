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

function sameSecret(a: string, b: string): boolean {
  // Hash first: timingSafeEqual needs equal lengths, and the length must not leak either.
  const h = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

/**
 * Who may change state: with a token, whoever presents it (from anywhere); without one, only
 * the machine itself. A browser page from another origin is refused either way (CSRF).
 */
export function authorize(
  token: string | null,
  req: { authorization?: string; remoteAddress?: string; origin?: string; host?: string },
): AuthResult {
  if (req.origin && req.origin !== "null") {
    let originHost: string | null = null;
    try {
      originHost = new URL(req.origin).host;
    } catch {
      originHost = null;
    }
    if (originHost !== req.host) return { ok: false, status: 403, error: "cross-origin request refused" };
  }
  if (token) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.authorization ?? "");
    if (m?.[1] && sameSecret(m[1], token)) return { ok: true };
    return { ok: false, status: 401, error: "missing or wrong bearer token" };
  }
  if (isLoopback(req.remoteAddress)) return { ok: true };
  return {
    ok: false,
    status: 403,
    error:
      "no API token is configured (api.token or NFLB_API_TOKEN): changes are accepted from loopback only",
  };
}
