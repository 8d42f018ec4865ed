import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { StatusJson } from "./status.ts";
import type { DnsView } from "../dns/service.ts";
import { parseHostPort } from "../net/ip.ts";
import { CSRF_HEADER, admit, authorize, type RequestFacts, type Served } from "./auth.ts";
import { dashboardAsset } from "./dashboard/assets.ts";
import {
  EventStreams,
  HEARTBEAT_MS,
  MAX_STREAMS,
  MAX_STREAMS_PER_CLIENT,
  clientKey,
  type EventFeed,
} from "./events.ts";
import { registerControlRoutes } from "./routes-control.ts";
import { srcPath } from "../paths.ts";

export type ActionResult =
  { ok: true; body: Record<string, unknown> } | { ok: false; status: 404 | 409; error: string };

/** What the HTTP API needs from the daemon (a fake in tests). */
export interface ApiDaemon {
  status(): Promise<StatusJson>;
  setUplinkEnabled(name: string, enabled: boolean): Promise<ActionResult>;
  setBackendDrained(service: string, backend: string, drained: boolean): Promise<ActionResult>;
  /** `api.token` or NFLB_API_TOKEN; null when neither is set. */
  token(): string | null;
  readonly events: EventFeed;
  metrics(): Promise<{ contentType: string; body: string }>;
  /**
   * The DNS forwarder and domain sets: entries of `rule` (every rule: "*"), and the rules that
   * hold `address`; null without a `dns` section.
   */
  dns?(rule?: string, address?: string): DnsView | null;
}

export interface ApiOptions {
  heartbeatMs?: number;
  dashboardFile?: string;
  /** Called for every accepted or refused change, for the daemon's log. */
  onAction?: (fields: Record<string, unknown>) => void;
  /** `HOST:PORT` the API is reached at; by default the socket's own address once it listens. */
  listen?: string;
  /** Extra Host names the API answers to (`api.hosts`), read at each request. */
  hosts?: () => readonly string[];
  maxStreams?: number;
  maxStreamsPerClient?: number;
  /** Open sockets at once (HTTP keep-alive and event streams included). */
  maxConnections?: number;
}

/** Bounds on what one client can hold: a slow or silent client is cut off, not waited for. */
export const LIMITS = {
  bodyBytes: 4096,
  /** The whole request (headers and body) must arrive within this. */
  requestTimeoutMs: 10_000,
  /** A socket idle this long is closed; event streams beat every HEARTBEAT_MS, well within. */
  connectionTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  maxRequestsPerSocket: 1000,
  maxConnections: 256,
} as const;

/** Reads scripts (the CLI, Prometheus) make by whatever name reaches the daemon. */
const HOST_FREE = new Set(["/api/v1/status", "/metrics", "/api/v1/events"]);

/**
 * Names a plain object answers for without holding them (`__proto__`, `constructor`, `toString`…):
 * refused before they reach a lookup in the daemon's config objects.
 */
export function inheritedName(name: string): boolean {
  return name === "__proto__" || name in Object.prototype;
}

const DASHBOARD = srcPath("api/dashboard/index.html");

/** A schema compiler that refuses. Fastify passes it the route (its .d.ts says otherwise). */
function noSchemas() {
  return (route: unknown): never => {
    const r = route as { method?: string; url?: string };
    throw new Error(`${r.method} ${r.url}: route schemas are not supported (no schema compiler loaded)`);
  };
}

/**
 * The contract's routes and nothing else: status, uplink disable/enable, backend drain/enable,
 * events (SSE), metrics, and the dashboard at `/`.
 */
export function buildApi(d: ApiDaemon, opts: ApiOptions = {}): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: LIMITS.bodyBytes,
    requestTimeout: LIMITS.requestTimeoutMs,
    connectionTimeout: LIMITS.connectionTimeoutMs,
    keepAliveTimeout: LIMITS.keepAliveTimeoutMs,
    maxRequestsPerSocket: LIMITS.maxRequestsPerSocket,
    forceCloseConnections: true,
    // No route declares a schema, so the default compilers (ajv and fast-json-stringify, which
    // fastify requires at construction unless both are supplied) would be dead weight: ~2.3 MiB
    // of the daemon's RSS. A route given a schema later fails loudly at ready() instead.
    schemaController: { compilersFactory: { buildValidator: noSchemas, buildSerializer: noSchemas } },
  });
  app.server.maxConnections = opts.maxConnections ?? LIMITS.maxConnections;
  const streams = new EventStreams(d.events, opts.heartbeatMs ?? HEARTBEAT_MS, {
    total: opts.maxStreams ?? MAX_STREAMS,
    perClient: opts.maxStreamsPerClient ?? MAX_STREAMS_PER_CLIENT,
  });
  // Per start: a page served before a restart must be reloaded to act again.
  const csrfSecret = randomBytes(32).toString("base64url");

  const served = (): Served => {
    const names = opts.hosts?.() ?? [];
    const hp = opts.listen ? parseHostPort(opts.listen) : null;
    if (hp && !("error" in hp)) return { address: hp.addr.text, port: hp.port, names };
    const a = app.server.address() as AddressInfo | string | null;
    if (a && typeof a === "object") return { address: a.address, port: a.port, names };
    return { address: null, port: null, names };
  };
  const facts = (req: FastifyRequest): RequestFacts => {
    const h = req.headers;
    const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(",") : v);
    return {
      method: req.method,
      authorization: h.authorization,
      remoteAddress: req.socket.remoteAddress,
      origin: h.origin,
      host: h.host,
      fetchSite: one(h["sec-fetch-site"]),
      csrf: one(h[CSRF_HEADER]),
    };
  };

  // POSTs carry no body; accept (and ignore) whatever a client sends, including an empty JSON
  // one. Read as a buffer so bodyLimit holds.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, _body, done) => done(null, undefined));

  // Every request: a foreign Host (DNS rebinding) or a foreign page is refused before routing.
  app.addHook("onRequest", async (req, reply) => {
    const path = req.url.split("?")[0] ?? "";
    const hostFree = (req.method === "GET" || req.method === "HEAD") && HOST_FREE.has(path);
    const r = admit(d.token(), facts(req), served(), hostFree);
    if (!r.ok) {
      opts.onAction?.({
        url: req.url,
        from: req.socket.remoteAddress,
        host: req.headers.host,
        refused: r.error,
      });
      return reply.code(r.status).send({ error: r.error });
    }
  });

  app.addHook("preClose", (done) => {
    streams.closeAll();
    done();
  });

  // Every route's names (including routes other modules add): `__proto__`, `constructor`… never
  // reach a lookup in the daemon's config objects, whatever the route does with them.
  app.addHook("preValidation", async (req, reply) => {
    for (const v of Object.values((req.params ?? {}) as Record<string, unknown>))
      if (typeof v === "string" && inheritedName(v))
        return reply.code(404).send({ error: `no such name ${v}` });
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no route ${req.method} ${req.url.split("?")[0]}` });
  });
  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const code = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    void reply.code(code).send({ error: err.message });
  });

  app.get("/api/v1/status", async () => d.status());

  app.get<{ Querystring: { rule?: string; address?: string } }>("/api/v1/dns", async (req, reply) => {
    const { rule, address } = req.query;
    if ((rule !== undefined && rule.length > 64) || (address !== undefined && address.length > 64))
      return reply.code(400).send({ error: "rule and address are at most 64 characters" });
    const v = d.dns?.(rule, address) ?? null;
    if (!v) return reply.code(404).send({ error: "the running config has no dns section" });
    return v;
  });

  const guard = async (req: FastifyRequest, reply: FastifyReply) => {
    const r = authorize(d.token(), csrfSecret, facts(req), served());
    if (!r.ok) {
      opts.onAction?.({ url: req.url, from: req.socket.remoteAddress, refused: r.error });
      return reply.code(r.status).send({ error: r.error });
    }
  };

  const answer = (reply: FastifyReply, r: ActionResult, fields: Record<string, unknown>) => {
    opts.onAction?.({ ...fields, ok: r.ok, ...(r.ok ? {} : { error: r.error }) });
    return r.ok ? reply.send(r.body) : reply.code(r.status).send({ error: r.error });
  };

  app.post<{ Params: { name: string; action: string } }>(
    "/api/v1/uplinks/:name/:action",
    { preHandler: guard },
    async (req, reply) => {
      const { name, action } = req.params;
      if (action !== "disable" && action !== "enable")
        return reply.code(404).send({ error: `unknown action ${action} (disable | enable)` });
      const r = await d.setUplinkEnabled(name, action === "enable");
      return answer(reply, r, { uplink: name, action, from: req.socket.remoteAddress });
    },
  );

  app.post<{ Params: { name: string; address: string; action: string } }>(
    "/api/v1/services/:name/backends/:address/:action",
    { preHandler: guard },
    async (req, reply) => {
      const { name, address, action } = req.params;
      if (action !== "drain" && action !== "enable")
        return reply.code(404).send({ error: `unknown action ${action} (drain | enable)` });
      const r = await d.setBackendDrained(name, address, action === "drain");
      return answer(reply, r, { service: name, backend: address, action, from: req.socket.remoteAddress });
    },
  );

  registerControlRoutes(app, d, guard, opts.onAction);

  app.get("/api/v1/events", (req, reply) => {
    const last = req.headers["last-event-id"];
    reply.hijack();
    const client = clientKey(req.socket.remoteAddress);
    const r = streams.serve(reply.raw, typeof last === "string" ? last : undefined, client);
    if (!r.ok) {
      reply.raw.writeHead(503, { "content-type": "application/json", "retry-after": "10" });
      reply.raw.end(JSON.stringify({ error: r.error }));
    }
  });

  app.get("/metrics", async (_req, reply) => {
    const m = await d.metrics();
    return reply.type(m.contentType).send(m.body);
  });

  app.get("/", async (_req, reply) => {
    const html = await readFile(opts.dashboardFile ?? DASHBOARD, "utf8");
    // The page carries the CSRF secret: never cached, never framed by another page.
    return reply
      .type("text/html; charset=utf-8")
      .header("cache-control", "no-store")
      .header("x-frame-options", "DENY")
      .header("content-security-policy", "frame-ancestors 'none'")
      .send(withCsrfSecret(html, csrfSecret));
  });

  app.get<{ Params: { file: string } }>("/dashboard/:file", async (req, reply) => {
    const a = await dashboardAsset(req.params.file);
    if (!a) return reply.code(404).send({ error: `no dashboard file ${req.params.file}` });
    return reply.type(a.type).header("cache-control", "no-cache").send(a.body);
  });

  return app;
}

/** The page's `<meta name="nflb-csrf">`, filled in (app.js sends it back as X-NFLB-CSRF). */
export function withCsrfSecret(html: string, secret: string): string {
  const meta = `<meta name="nflb-csrf" content="${secret}" />`;
  if (html.includes('<meta name="nflb-csrf" content="" />'))
    return html.replace('<meta name="nflb-csrf" content="" />', meta);
  return html.replace("</head>", `  ${meta}\n  </head>`);
}
