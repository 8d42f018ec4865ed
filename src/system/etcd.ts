import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";
import { Readable } from "node:stream";

/**
 * A small etcd v3 client over etcd's HTTP/JSON gateway (`/v3/...`), using Node's own `fetch`
 * (or node:https when client certificates or a private CA are configured).
 * Keys and values are base64 in the wire format and UTF-8 strings here; 64-bit ids (leases)
 * stay strings because they do not fit a JS number.
 *
 * Chosen over the `etcd3` package (gRPC: @grpc/grpc-js + protobufjs) because nflb needs eight
 * calls, all of which the gateway serves, and a dependency-free client is easy to fake in tests.
 */
export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  /** "0" when the key has no lease. */
  lease: string;
}

export interface WatchEvent {
  type: "put" | "delete";
  kv: KeyValue;
}

export type Compare =
  | {
      key: string;
      rangeEnd?: string;
      target: "mod";
      result: "equal" | "less" | "greater";
      modRevision: number;
    }
  | {
      key: string;
      rangeEnd?: string;
      target: "create";
      result: "equal" | "less" | "greater";
      createRevision: number;
    }
  | { key: string; target: "value"; result: "equal"; value: string };

export type TxnOp =
  | { put: { key: string; value: string; lease?: string } }
  | { deleteRange: { key: string; rangeEnd?: string } }
  | { range: { key: string; rangeEnd?: string } };

export interface TxnResult {
  succeeded: boolean;
  revision: number;
}

/** etcd answered with an error (HTTP status ≠ 200). */
export class EtcdError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "EtcdError";
  }
}

/** No endpoint answered in time. */
export class EtcdUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EtcdUnavailableError";
  }
}

export type FetchLike = (
  url: string,
  init: { method: string; body: string; signal: AbortSignal; headers?: Record<string, string> },
) => Promise<{
  ok: boolean;
  status: number;
  text(): Promise<string>;
  body: ReadableStream<Uint8Array> | null;
}>;

export interface EtcdTls {
  /** PEM: the CA that signed etcd's server certificate (default: the system's CAs). */
  ca?: Buffer;
  /** PEM: this client's certificate and key, for etcd's `--client-cert-auth`. */
  cert?: Buffer;
  key?: Buffer;
}

export interface EtcdClientOptions {
  /** Per-request time limit (not for watch streams). */
  timeoutMs?: number;
  /** Time limit for opening a watch stream (its first answer); default max(5 s, 4 × timeoutMs). */
  watchOpenTimeoutMs?: number;
  fetch?: FetchLike;
  /** TLS material for https:// endpoints (ignored by an injected `fetch`). */
  tls?: EtcdTls;
  /** etcd's own users: a token from /v3/auth/authenticate rides on every request. */
  auth?: { username: string; password: string };
}

/** `scheme://user:pass@host` → `scheme://***@host`, anywhere in a text (logs, errors, status). */
export function redactCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, "$1***@");
}

/** The largest answer read into memory (a range over the cluster prefix is far smaller). */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/**
 * A FetchLike over node:http/node:https, for what Node's fetch cannot take per client: a private
 * CA and a client certificate. Keep-alive, so a TLS handshake is not paid on every keep-alive.
 */
export function nodeFetch(tls: EtcdTls): FetchLike {
  const agent = new HttpsAgent({
    keepAlive: true,
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
  });
  return (url, init) =>
    new Promise((resolve, reject) => {
      const u = new URL(url);
      const https = u.protocol === "https:";
      const req = (https ? httpsRequest : httpRequest)(
        u,
        {
          method: init.method,
          headers: { "content-type": "application/json", ...init.headers },
          signal: init.signal,
          ...(https ? { agent } : {}),
        },
        (res) => {
          const status = res.statusCode ?? 0;
          const body = Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>;
          resolve({
            ok: status >= 200 && status < 300,
            status,
            body,
            text: async () => {
              const chunks: Buffer[] = [];
              let n = 0;
              for await (const c of body as unknown as AsyncIterable<Uint8Array>) {
                n += c.length;
                if (n > MAX_RESPONSE_BYTES) throw new Error("etcd answer too large");
                chunks.push(Buffer.from(c));
              }
              return Buffer.concat(chunks).toString("utf8");
            },
          });
        },
      );
      req.on("error", reject);
      req.end(init.body);
    });
}

/**
 * `run(signal)`, ended at `ms` whether or not the transport honours the abort. A request parked
 * behind a dead connection (SYNs in back-off through a cut link, a pooled socket in retransmit,
 * a stalled body) must not hold the caller longer than its time limit: the agent's steps run on
 * one queue, and one call that never ends keeps a node out of the cluster for good.
 */
export async function withDeadline<T>(ms: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const e = new DOMException("The operation was aborted due to timeout", "TimeoutError");
      ac.abort(e);
      reject(e);
    }, ms);
  });
  const work = run(ac.signal);
  // The loser of the race is still settled later: nobody may see that as unhandled.
  work.catch(() => undefined);
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** An auth token etcd no longer accepts (expired, revoked, restarted etcd with simple tokens). */
const isAuthRejection = (status: number, message: string) =>
  status === 401 || /invalid auth token|user name is empty|auth token is expired/i.test(message);

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, "base64").toString("utf8") : "");

/** The end of the key range holding every key that starts with `prefix`. */
export function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, "utf8");
  for (let i = bytes.length - 1; i >= 0; i--) {
    if ((bytes[i] ?? 0) < 0xff) {
      const end = bytes.subarray(0, i + 1);
      end[i] = (end[i] ?? 0) + 1;
      return end.toString("latin1");
    }
  }
  return "\u0000";
}

/** Range ends are byte strings; prefixEnd returns latin1 so it survives the base64 round trip. */
const b64End = (s: string) => Buffer.from(s, s === "\u0000" ? "utf8" : "latin1").toString("base64");

interface RawKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}
interface RawHeader {
  revision?: string;
}

function kvOf(r: RawKv): KeyValue {
  return {
    key: unb64(r.key),
    value: unb64(r.value),
    createRevision: Number(r.create_revision ?? 0),
    modRevision: Number(r.mod_revision ?? 0),
    version: Number(r.version ?? 0),
    lease: r.lease ?? "0",
  };
}

function rawCompare(c: Compare): Record<string, string> {
  const out: Record<string, string> = { key: b64(c.key), result: c.result.toUpperCase() };
  if ("rangeEnd" in c && c.rangeEnd !== undefined) out.range_end = b64End(c.rangeEnd);
  if (c.target === "mod") Object.assign(out, { target: "MOD", mod_revision: String(c.modRevision) });
  else if (c.target === "create")
    Object.assign(out, { target: "CREATE", create_revision: String(c.createRevision) });
  else Object.assign(out, { target: "VALUE", value: b64(c.value) });
  return out;
}

function rawOp(op: TxnOp): Record<string, unknown> {
  if ("put" in op) {
    const p: Record<string, string> = { key: b64(op.put.key), value: b64(op.put.value) };
    if (op.put.lease) p.lease = op.put.lease;
    return { request_put: p };
  }
  if ("deleteRange" in op) {
    const d: Record<string, string> = { key: b64(op.deleteRange.key) };
    if (op.deleteRange.rangeEnd !== undefined) d.range_end = b64End(op.deleteRange.rangeEnd);
    return { request_delete_range: d };
  }
  const r: Record<string, string> = { key: b64(op.range.key) };
  if (op.range.rangeEnd !== undefined) r.range_end = b64End(op.range.rangeEnd);
  return { request_range: r };
}

export class EtcdClient {
  private readonly endpoints: string[];
  private current = 0;
  private readonly timeoutMs: number;
  private readonly watchOpenTimeoutMs: number;
  private readonly fetchFn: FetchLike;
  private readonly auth: { username: string; password: string } | undefined;
  private token: string | null = null;
  private authenticating: Promise<string> | null = null;

  constructor(endpoints: readonly string[], opts: EtcdClientOptions = {}) {
    if (endpoints.length === 0) throw new Error("etcd: no endpoints");
    for (const e of endpoints) {
      let u: URL;
      try {
        u = new URL(e);
      } catch {
        throw new Error(`etcd: not a URL: ${redactCredentials(e)}`);
      }
      if (u.protocol !== "http:" && u.protocol !== "https:")
        throw new Error(`etcd: unsupported endpoint ${redactCredentials(e)} (http:// or https:// only)`);
    }
    this.endpoints = endpoints.map((e) => e.replace(/\/+$/, ""));
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.watchOpenTimeoutMs = opts.watchOpenTimeoutMs ?? Math.max(5000, 4 * this.timeoutMs);
    this.fetchFn = opts.fetch ?? (opts.tls ? nodeFetch(opts.tls) : (fetch as unknown as FetchLike));
    this.auth = opts.auth;
  }

  /** The endpoints as they may be printed (no credentials). */
  get endpointNames(): string[] {
    return this.endpoints.map(redactCredentials);
  }

  /** A token for etcd's auth, fetched once and shared by concurrent callers. */
  private async authToken(): Promise<string | null> {
    if (!this.auth) return null;
    if (this.token) return this.token;
    const auth = this.auth;
    this.authenticating ??= this.raw<{ token?: string }>(
      "/v3/auth/authenticate",
      { name: auth.username, password: auth.password },
      this.timeoutMs,
      null,
    )
      .then((r) => {
        if (!r.token) throw new EtcdError("etcd authenticate: no token in the answer", 200);
        this.token = r.token;
        return r.token;
      })
      .finally(() => {
        this.authenticating = null;
      });
    return this.authenticating;
  }

  /** POST with the auth token; a token etcd rejects is dropped and the call made once more. */
  private async call<T>(path: string, body: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    const token = await this.authToken();
    try {
      return await this.raw<T>(path, body, timeoutMs, token);
    } catch (e) {
      if (!(this.auth && e instanceof EtcdError && isAuthRejection(e.status, e.message))) throw e;
      if (this.token === token) this.token = null;
      return this.raw<T>(path, body, timeoutMs, await this.authToken());
    }
  }

  /** POST to the current endpoint; on a network failure try the others once each. */
  private async raw<T>(path: string, body: unknown, timeoutMs: number, token: string | null): Promise<T> {
    let lastErr: unknown;
    for (let i = 0; i < this.endpoints.length; i++) {
      const ep = this.endpoints[(this.current + i) % this.endpoints.length] ?? "";
      let res: Awaited<ReturnType<FetchLike>>;
      let text: string;
      try {
        [res, text] = await withDeadline(timeoutMs, async (signal) => {
          const r = await this.fetchFn(`${ep}${path}`, {
            method: "POST",
            body: JSON.stringify(body),
            signal,
            ...(token ? { headers: { authorization: token } } : {}),
          });
          return [r, await r.text()] as const;
        });
      } catch (e) {
        lastErr = e;
        continue;
      }
      this.current = (this.current + i) % this.endpoints.length;
      if (!res.ok) {
        let msg = text.trim();
        try {
          const j = JSON.parse(text) as { message?: string; error?: string };
          msg = j.message ?? j.error ?? msg;
        } catch {
          // not JSON: keep the text
        }
        throw new EtcdError(
          redactCredentials(`etcd ${path}: ${msg.slice(0, 500) || `HTTP ${res.status}`}`),
          res.status,
        );
      }
      return JSON.parse(text) as T;
    }
    const why =
      lastErr instanceof Error
        ? lastErr.cause instanceof Error
          ? lastErr.cause.message
          : lastErr.message
        : String(lastErr);
    throw new EtcdUnavailableError(
      redactCredentials(`etcd unreachable (${this.endpoints.join(", ")}): ${why}`),
    );
  }

  async range(key: string, rangeEnd?: string): Promise<{ revision: number; kvs: KeyValue[] }> {
    const body: Record<string, string> = { key: b64(key) };
    if (rangeEnd !== undefined) body.range_end = b64End(rangeEnd);
    const r = await this.call<{ header?: RawHeader; kvs?: RawKv[] }>("/v3/kv/range", body);
    return { revision: Number(r.header?.revision ?? 0), kvs: (r.kvs ?? []).map(kvOf) };
  }

  rangePrefix(prefix: string): Promise<{ revision: number; kvs: KeyValue[] }> {
    return this.range(prefix, prefixEnd(prefix));
  }

  async get(key: string): Promise<KeyValue | null> {
    return (await this.range(key)).kvs[0] ?? null;
  }

  async put(key: string, value: string, opts: { lease?: string } = {}): Promise<number> {
    const body: Record<string, string> = { key: b64(key), value: b64(value) };
    if (opts.lease) body.lease = opts.lease;
    const r = await this.call<{ header?: RawHeader }>("/v3/kv/put", body);
    return Number(r.header?.revision ?? 0);
  }

  async delete(key: string, rangeEnd?: string): Promise<number> {
    const body: Record<string, string> = { key: b64(key) };
    if (rangeEnd !== undefined) body.range_end = b64End(rangeEnd);
    const r = await this.call<{ deleted?: string }>("/v3/kv/deleterange", body);
    return Number(r.deleted ?? 0);
  }

  async txn(t: { compare: Compare[]; success: TxnOp[]; failure?: TxnOp[] }): Promise<TxnResult> {
    const r = await this.call<{ header?: RawHeader; succeeded?: boolean }>("/v3/kv/txn", {
      compare: t.compare.map(rawCompare),
      success: t.success.map(rawOp),
      failure: (t.failure ?? []).map(rawOp),
    });
    return { succeeded: r.succeeded === true, revision: Number(r.header?.revision ?? 0) };
  }

  /** Grant a lease; etcd counts in whole seconds and may round the TTL up to its minimum. */
  async leaseGrant(ttlSeconds: number): Promise<{ id: string; ttl: number }> {
    const r = await this.call<{ ID?: string; TTL?: string; error?: string }>("/v3/lease/grant", {
      TTL: String(Math.max(1, Math.ceil(ttlSeconds))),
    });
    if (!r.ID) throw new EtcdError(`etcd lease grant: ${r.error ?? "no id"}`, 200);
    return { id: r.ID, ttl: Number(r.TTL ?? 0) };
  }

  /** One keep-alive round trip. Returns the TTL the lease was renewed to: 0 means it is gone. */
  async leaseKeepAlive(id: string, timeoutMs?: number): Promise<number> {
    // The gateway maps the bidirectional stream to one request per line; one line, one answer.
    const r = await this.call<{ result?: { TTL?: string } }>("/v3/lease/keepalive", { ID: id }, timeoutMs);
    return Number(r.result?.TTL ?? 0);
  }

  async leaseRevoke(id: string): Promise<void> {
    try {
      await this.call("/v3/lease/revoke", { ID: id });
    } catch (e) {
      // Already expired or revoked: the goal is reached.
      if (e instanceof EtcdError && /not found/i.test(e.message)) return;
      throw e;
    }
  }

  /**
   * Watch a key range from `startRevision` (inclusive) and call `onEvents` for each batch.
   * Resolves when the stream ends or `signal` aborts; throws when it cannot be opened.
   * The caller re-opens it (from its last revision + 1) after a failure.
   */
  async watch(
    key: string,
    rangeEnd: string | undefined,
    opts: {
      startRevision?: number;
      signal: AbortSignal;
      onEvents: (events: WatchEvent[], revision: number) => void;
    },
  ): Promise<void> {
    const create: Record<string, string> = { key: b64(key) };
    if (rangeEnd !== undefined) create.range_end = b64End(rangeEnd);
    if (opts.startRevision) create.start_revision = String(opts.startRevision);
    const ep = this.endpoints[this.current] ?? "";
    const token = await this.authToken();
    let res: Awaited<ReturnType<FetchLike>>;
    try {
      // Opening is bounded like a request (etcd answers a create at once); the stream is not.
      res = await withDeadline(this.watchOpenTimeoutMs, (open) =>
        this.fetchFn(`${ep}/v3/watch`, {
          method: "POST",
          body: JSON.stringify({ create_request: create }),
          signal: AbortSignal.any([opts.signal, open, AbortSignal.timeout(24 * 3600_000)]),
          ...(token ? { headers: { authorization: token } } : {}),
        }),
      );
    } catch (e) {
      this.current = (this.current + 1) % this.endpoints.length;
      throw new EtcdUnavailableError(
        redactCredentials(`etcd watch: ${e instanceof Error ? e.message : String(e)}`),
      );
    }
    if (res.status === 401 && this.token === token) this.token = null;
    if (!res.ok || !res.body) throw new EtcdError(`etcd watch: HTTP ${res.status}`, res.status);
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) this.onWatchLine(line, opts.onEvents);
        }
      }
    } catch (e) {
      if (opts.signal.aborted) return;
      if (e instanceof EtcdError) {
        // A watch cancelled for its token: the next one authenticates again.
        if (isAuthRejection(0, e.message) && this.token === token) this.token = null;
        throw e;
      }
      throw new EtcdUnavailableError(
        redactCredentials(`etcd watch stream: ${e instanceof Error ? e.message : String(e)}`),
      );
    }
  }

  private onWatchLine(line: string, onEvents: (events: WatchEvent[], revision: number) => void): void {
    const msg = JSON.parse(line) as {
      result?: {
        header?: RawHeader;
        events?: { type?: string; kv?: RawKv }[];
        canceled?: boolean;
        cancel_reason?: string;
        compact_revision?: string;
      };
      error?: { message?: string };
    };
    if (msg.error) throw new EtcdError(`etcd watch: ${msg.error.message ?? "error"}`, 200);
    const r = msg.result;
    if (!r) return;
    if (r.canceled)
      throw new EtcdError(
        r.cancel_reason
          ? `etcd watch cancelled: ${r.cancel_reason.slice(0, 300)}`
          : `etcd watch cancelled (compacted at ${r.compact_revision ?? "?"})`,
        200,
      );
    const events = (r.events ?? []).map((e): WatchEvent => ({
      type: e.type === "DELETE" ? "delete" : "put",
      kv: kvOf(e.kv ?? {}),
    }));
    onEvents(events, Number(r.header?.revision ?? 0));
  }
}
