import { domainToASCII } from "node:url";

/** Longest DNS name in text form (RFC 1035: 255 octets on the wire). */
export const MAX_DOMAIN = 253;

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Why `s` is not a domain nflb can match (null when it is): lower case ASCII only, so a name in a
 * DNS answer compares byte for byte; IDNs as punycode (xn--…), written by the admin, never guessed.
 */
export function domainProblem(s: string): string | null {
  if (s.length === 0) return "a domain name cannot be empty";
  if (s.length > MAX_DOMAIN + 2) return `a domain name has at most ${MAX_DOMAIN} characters`;
  const wild = s.startsWith("*.");
  const body = wild ? s.slice(2) : s;
  if (body.endsWith(".")) return `remove the trailing dot: ${s.slice(0, -1)}`;
  if (body.includes("*")) return `* only as the first label, like *.example.net (got ${s})`;
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(body)) {
    const ascii = domainToASCII(body);
    return ascii
      ? `write internationalized names as punycode: ${wild ? "*." : ""}${ascii}`
      : `not a valid domain name: ${s}`;
  }
  if (body !== body.toLowerCase()) return `write domain names in lower case: ${s.toLowerCase()}`;
  if (body.length > MAX_DOMAIN) return `a domain name has at most ${MAX_DOMAIN} characters`;
  const labels = body.split(".");
  if (labels.some((l) => !LABEL.test(l)))
    return `not a valid domain name: ${s} (labels of a-z, 0-9, _ and -, 1 to 63 long, separated by dots)`;
  return null;
}
