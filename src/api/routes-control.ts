import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ConfigIssue } from "../config/issues.ts";
import type { ActionResult, ApiDaemon } from "./server.ts";

/** What a reload came to: once `ok`, the kernel has the new config. */
export type ReloadOutcome =
  | { ok: true; config_version: string; applied: string }
  | {
      ok: false;
      /** config: the new file is invalid (nothing touched); apply: the kernel refused it (rolled back). */
      kind: "config" | "apply" | "stopping";
      error: string;
      file?: string;
      issues?: ConfigIssue[];
    };

/** The operator actions beyond the first contract: maint, runtime weights, reload. */
export interface ControlDaemon {
  setBackendMaint(service: string, backend: string): Promise<ActionResult>;
  setBackendWeight(service: string, backend: string, weight: number): Promise<ActionResult>;
  reloadConfig(): Promise<ReloadOutcome>;
}

type Guard = (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

const MAX_WEIGHT = 10_000;

/**
 * `POST /api/v1/services/NAME/backends/ADDRESS/maint` and `/weight` (body `{"weight": N}`),
 * `POST /api/v1/reload`. Registered as an encapsulated plugin: its JSON body parser applies to
 * these routes only (the others take no body). The static last segment wins over the
 * `:action` route of drain/enable. A daemon without these methods answers 501.
 */
export function registerControlRoutes(
  app: FastifyInstance,
  d: ApiDaemon & Partial<ControlDaemon>,
  guard: Guard,
  onAction?: (fields: Record<string, unknown>) => void,
): void {
  void app.register(async (api) => {
    api.addContentTypeParser(
      "application/json",
      { parseAs: "string", bodyLimit: 1024 },
      (_req, body, done) => {
        try {
          done(null, body === "" ? undefined : JSON.parse(String(body)));
        } catch {
          done(Object.assign(new Error("the body is not JSON"), { statusCode: 400 }), undefined);
        }
      },
    );

    const answer = (reply: FastifyReply, r: ActionResult, fields: Record<string, unknown>) => {
      onAction?.({ ...fields, ok: r.ok, ...(r.ok ? {} : { error: r.error }) });
      return r.ok ? reply.send(r.body) : reply.code(r.status).send({ error: r.error });
    };
    const missing = (reply: FastifyReply) => reply.code(501).send({ error: "not supported by this daemon" });

    api.post<{ Params: { name: string; address: string } }>(
      "/api/v1/services/:name/backends/:address/maint",
      { preHandler: guard },
      async (req, reply) => {
        if (!d.setBackendMaint) return missing(reply);
        const { name, address } = req.params;
        const r = await d.setBackendMaint(name, address);
        return answer(reply, r, {
          service: name,
          backend: address,
          action: "maint",
          from: req.socket.remoteAddress,
        });
      },
    );

    api.post<{ Params: { name: string; address: string }; Body: unknown }>(
      "/api/v1/services/:name/backends/:address/weight",
      { preHandler: guard },
      async (req, reply) => {
        if (!d.setBackendWeight) return missing(reply);
        const weight = (req.body as { weight?: unknown } | undefined)?.weight;
        if (typeof weight !== "number" || !Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT)
          return reply
            .code(400)
            .send({ error: `want a JSON body {"weight": N} with N an integer 0..${MAX_WEIGHT}` });
        const { name, address } = req.params;
        const r = await d.setBackendWeight(name, address, weight);
        return answer(reply, r, {
          service: name,
          backend: address,
          action: "weight",
          weight,
          from: req.socket.remoteAddress,
        });
      },
    );

    api.post("/api/v1/reload", { preHandler: guard }, async (req, reply) => {
      if (!d.reloadConfig) return missing(reply);
      const r = await d.reloadConfig();
      onAction?.({
        action: "reload",
        from: req.socket.remoteAddress,
        ok: r.ok,
        ...(r.ok ? {} : { error: r.error }),
      });
      if (r.ok) return reply.send(r);
      const code = r.kind === "config" ? 422 : r.kind === "apply" ? 409 : 503;
      return reply.code(code).send(r);
    });
  });
}
