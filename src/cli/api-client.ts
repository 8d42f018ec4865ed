import { readFile } from "node:fs/promises";
import { request } from "node:http";
import { parseHostPort } from "../net/ip.ts";
import { DEFAULT_API } from "./defaults.ts";
import { CliError, EXIT } from "./exit.ts";

/** Where the running daemon answers, and the token its POSTs need. */
export interface ApiTarget {
  /** `http://HOST:PORT` */
  base: string;
  token: string | null;
}

export interface ApiOpts {
  config: string;
  api?: string;
}

/**
 * The daemon's address: `--api`, else the config's `api.listen`, else the default. The config is
 * read leniently (YAML only, no validation): `nflb reload` must find the daemon precisely when the
 * file on disk has just become invalid. The token: the config's `api.token`, else NFLB_API_TOKEN.
 */
export async function apiTarget(o: ApiOpts, needs: { token?: boolean } = {}): Promise<ApiTarget> {
  // The YAML parser only when the config has something to tell (a cold start costs it ~20 ms).
  const envToken = process.env.NFLB_API_TOKEN || null;
  const read = o.api === undefined || (needs.token !== false && !envToken);
  const api = read ? await readApiSection(o.config) : {};
  const listen = o.api ?? (typeof api.listen === "string" ? api.listen : DEFAULT_API);
  const hp = parseHostPort(listen);
  if ("error" in hp) throw new CliError(`${o.api !== undefined ? "--api" : "api.listen"}: ${hp.error}`);
  const host = hp.addr.family === 6 ? `[${hp.addr.text}]` : hp.addr.text;
  const token = typeof api.token === "string" ? api.token : envToken;
  return { base: `http://${host}:${hp.port}`, token };
}

async function readApiSection(file: string): Promise<Record<string, unknown>> {
  try {
    const text = await readFile(file, "utf8");
    const { parse } = await import("yaml");
    const doc: unknown = parse(text, { maxAliasCount: 100 });
    const api = (doc as { api?: unknown } | null)?.api;
    return api && typeof api === "object" ? (api as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export interface Answer<T> {
  code: number;
  body: T;
}

/** The daemon did not answer at all (nothing listens, a timeout): distinct from an HTTP error. */
export class NoDaemonError extends CliError {
  constructor(url: string, cause: string, exitCode: number = EXIT.failure) {
    super(`no daemon answers at ${url}: ${cause}`, exitCode);
  }
}

/** A status of thousands of backends stays well below this; anything bigger is not our daemon. */
const MAX_ANSWER = 64 * 1024 * 1024;

/**
 * One request to the daemon; a JSON body both ways. Throws NoDaemonError when nothing answers.
 * node:http rather than fetch: fetch loads undici on first use, a third of `nflb status`'s start-up.
 */
export function call<T = Record<string, unknown>>(
  t: ApiTarget,
  method: "GET" | "POST",
  path: string,
  o: { body?: unknown; timeoutMs?: number; noDaemonExit?: number } = {},
): Promise<Answer<T>> {
  const url = `${t.base}${path}`;
  const headers: Record<string, string> = {};
  if (t.token && method === "POST") headers.authorization = `Bearer ${t.token}`;
  const payload = o.body !== undefined ? JSON.stringify(o.body) : "";
  if (o.body !== undefined) headers["content-type"] = "application/json";
  headers["content-length"] = String(Buffer.byteLength(payload));
  return new Promise((resolve, reject) => {
    let answered = false;
    const fail = (why: string) => reject(new NoDaemonError(url, why, o.noDaemonExit));
    const req = request(url, { method, headers }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER) req.destroy(new Error(`answer larger than ${MAX_ANSWER} bytes`));
        else chunks.push(c);
      });
      res.on("error", (e) => reject(new CliError(`${url}: ${e.message}`)));
      res.on("end", () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString("utf8");
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : {};
        } catch {
          body = { error: text.slice(0, 500) };
        }
        resolve({ code: res.statusCode ?? 0, body: body as T });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      fail("timed out");
    }, o.timeoutMs ?? 5000);
    req.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (answered) reject(new CliError(`${url}: ${e.message}`));
      else fail(e.code ?? e.message);
    });
    req.end(payload);
  });
}

/** The `error` of a refused request, for a one-line message. */
export function errorText(a: Answer<unknown>): string {
  const e = (a.body as { error?: unknown } | null)?.error;
  return typeof e === "string" ? e : `HTTP ${a.code}`;
}

export const pathPart = (s: string): string => encodeURIComponent(s);
