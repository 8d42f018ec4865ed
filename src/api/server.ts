import { readFile } from "node:fs/promises";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { StatusJson } from "../daemon/status.ts";
import { authorize } from "./auth.ts";
import { dashboardAsset } from "./dashboard/assets.ts";
import { EventStreams, HEARTBEAT_MS, type EventFeed } from "./events.ts";
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
}

export interface ApiOptions {
  heartbeatMs?: number;
  dashboardFile?: string;
  /** Called for every accepted or refused change, for the daemon's log. */
  onAction?: (fields: Record<string, unknown>) => void;
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
    bodyLimit: 4096,
    forceCloseConnections: true,
    // No route declares a schema, so the default compilers (ajv and fast-json-stringify, which
    // fastify requires at construction unless both are supplied) would be dead weight: ~2.3 MiB
    // of the daemon's RSS. A route given a schema later fails loudly at ready() instead.
    schemaController: { compilersFactory: { buildValidator: noSchemas, buildSerializer: noSchemas } },
  });
  const streams = new EventStreams(d.events, opts.heartbeatMs ?? HEARTBEAT_MS);

  // POSTs carry no body; accept (and ignore) whatever a client sends, including an empty JSON one.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_req, payload, done) => {
    payload.resume();
    payload.on("end", () => done(null, undefined));
  });

  app.addHook("preClose", (done) => {
    streams.closeAll();
    done();
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no route ${req.method} ${req.url.split("?")[0]}` });
  });
  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const code = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    void reply.code(code).send({ error: err.message });
  });

  app.get("/api/v1/status", async () => d.status());

  const guard = async (req: FastifyRequest, reply: FastifyReply) => {
    const r = authorize(d.token(), {
      authorization: req.headers.authorization,
      remoteAddress: req.socket.remoteAddress,
      origin: req.headers.origin,
      host: req.headers.host,
    });
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
    if (!streams.serve(reply.raw, typeof last === "string" ? last : undefined)) {
      reply.raw.writeHead(503, { "content-type": "application/json" });
      reply.raw.end(JSON.stringify({ error: "too many event streams open" }));
    }
  });

  app.get("/metrics", async (_req, reply) => {
    const m = await d.metrics();
    return reply.type(m.contentType).send(m.body);
  });

  app.get("/", async (_req, reply) => {
    const html = await readFile(opts.dashboardFile ?? DASHBOARD, "utf8");
    return reply.type("text/html; charset=utf-8").header("cache-control", "no-cache").send(html);
  });

  app.get<{ Params: { file: string } }>("/dashboard/:file", async (req, reply) => {
    const a = await dashboardAsset(req.params.file);
    if (!a) return reply.code(404).send({ error: `no dashboard file ${req.params.file}` });
    return reply.type(a.type).header("cache-control", "no-cache").send(a.body);
  });

  return app;
}
