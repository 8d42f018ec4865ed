/**
 * A small etcd v3 client over etcd's HTTP/JSON gateway (`/v3/...`), using Node's own `fetch`.
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
  init: { method: string; body: string; signal: AbortSignal },
) => Promise<{
  ok: boolean;
  status: number;
  text(): Promise<string>;
  body: ReadableStream<Uint8Array> | null;
}>;

export interface EtcdClientOptions {
  /** Per-request time limit (not for watch streams). */
  timeoutMs?: number;
  fetch?: FetchLike;
}

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
  private readonly fetchFn: FetchLike;

  constructor(endpoints: readonly string[], opts: EtcdClientOptions = {}) {
    if (endpoints.length === 0) throw new Error("etcd: no endpoints");
    for (const e of endpoints) {
      const u = new URL(e);
      if (u.protocol !== "http:" && u.protocol !== "https:")
        throw new Error(`etcd: unsupported endpoint ${e}`);
    }
    this.endpoints = endpoints.map((e) => e.replace(/\/+$/, ""));
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.fetchFn = opts.fetch ?? (fetch as unknown as FetchLike);
  }

  /** POST to the current endpoint; on a network failure try the others once each. */
  private async call<T>(path: string, body: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    let lastErr: unknown;
    for (let i = 0; i < this.endpoints.length; i++) {
      const ep = this.endpoints[(this.current + i) % this.endpoints.length] ?? "";
      let res: Awaited<ReturnType<FetchLike>>;
      let text: string;
      try {
        res = await this.fetchFn(`${ep}${path}`, {
          method: "POST",
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs),
        });
        text = await res.text();
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
        throw new EtcdError(`etcd ${path}: ${msg || `HTTP ${res.status}`}`, res.status);
      }
      return JSON.parse(text) as T;
    }
    const why =
      lastErr instanceof Error
        ? lastErr.cause instanceof Error
          ? lastErr.cause.message
          : lastErr.message
        : String(lastErr);
    throw new EtcdUnavailableError(`etcd unreachable (${this.endpoints.join(", ")}): ${why}`);
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
    let res: Awaited<ReturnType<FetchLike>>;
    try {
      res = await this.fetchFn(`${ep}/v3/watch`, {
        method: "POST",
        body: JSON.stringify({ create_request: create }),
        signal: AbortSignal.any([opts.signal, AbortSignal.timeout(24 * 3600_000)]),
      });
    } catch (e) {
      this.current = (this.current + 1) % this.endpoints.length;
      throw new EtcdUnavailableError(`etcd watch: ${e instanceof Error ? e.message : String(e)}`);
    }
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
      throw new EtcdUnavailableError(`etcd watch stream: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private onWatchLine(line: string, onEvents: (events: WatchEvent[], revision: number) => void): void {
    const msg = JSON.parse(line) as {
      result?: {
        header?: RawHeader;
        events?: { type?: string; kv?: RawKv }[];
        canceled?: boolean;
        compact_revision?: string;
      };
      error?: { message?: string };
    };
    if (msg.error) throw new EtcdError(`etcd watch: ${msg.error.message ?? "error"}`, 200);
    const r = msg.result;
    if (!r) return;
    if (r.canceled)
      throw new EtcdError(`etcd watch cancelled (compacted at ${r.compact_revision ?? "?"})`, 200);
    const events = (r.events ?? []).map((e): WatchEvent => ({
      type: e.type === "DELETE" ? "delete" : "put",
      kv: kvOf(e.kv ?? {}),
    }));
    onEvents(events, Number(r.header?.revision ?? 0));
  }
}
