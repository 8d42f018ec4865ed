// The JSON the traffic tools print, shared by the tools (writers) and the lab helpers (readers).
import * as z from "zod";

const counts = z.record(z.string(), z.number().int().nonnegative());

export const clientSummarySchema = z.object({
  ok: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  /** Connections never started because the deadline passed first. */
  notStarted: z.number().int().nonnegative(),
  /** Reply line → how many connections got it (e.g. "backend-2 198.18.0.10"). */
  bySeen: counts,
  /** Source address ("" when unbound) → reply line → count. */
  bySource: z.record(z.string(), counts),
  /** Distinct error messages, capped. */
  errors: z.array(z.string()),
  durationMs: z.number().nonnegative(),
});
export type ClientSummary = z.infer<typeof clientSummarySchema>;

export const holderConnectedSchema = z.object({
  type: z.literal("connected"),
  greeting: z.string(),
  localAddress: z.string(),
  localPort: z.number().int(),
});
export type HolderConnected = z.infer<typeof holderConnectedSchema>;

export const holderSummarySchema = z.object({
  type: z.literal("summary"),
  connected: z.boolean(),
  greeting: z.string().nullable(),
  exchanges: z.number().int().nonnegative(),
  failures: z.number().int().nonnegative(),
  errors: z.array(z.string()),
  /** Why it stopped: the duration ran out, SIGTERM, the peer closed, or a socket error. */
  end: z.enum(["duration", "signal", "closed", "error"]),
  elapsedMs: z.number().nonnegative(),
  /** Time of the last successful exchange / first failure, relative to the start. */
  lastOkMs: z.number().nonnegative().nullable(),
  firstFailureMs: z.number().nonnegative().nullable(),
});
export type HolderSummary = z.infer<typeof holderSummarySchema>;

/** Parse the last line of `stdout` that is a JSON object matching `schema`. */
export function parseLastJsonLine<T>(stdout: string, schema: z.ZodType<T>, what: string): T {
  const lines = stdout.split("\n").filter((l) => l.trim().startsWith("{"));
  for (let i = lines.length - 1; i >= 0; i--) {
    let value: unknown;
    try {
      value = JSON.parse(lines[i] ?? "");
    } catch {
      continue;
    }
    const r = schema.safeParse(value);
    if (r.success) return r.data;
  }
  throw new Error(`no ${what} in tool output: ${stdout.trim().slice(-500) || "(empty)"}`);
}

export function parseClientSummary(stdout: string): ClientSummary {
  return parseLastJsonLine(stdout, clientSummarySchema, "client summary");
}

export function parseHolderSummary(stdout: string): HolderSummary {
  return parseLastJsonLine(stdout, holderSummarySchema, "holder summary");
}

/** Distinct messages, at most `limit`: a failing run of 10 000 connections must not print 10 000 errors. */
export class ErrorList {
  private readonly seen = new Set<string>();
  constructor(private readonly limit = 20) {}
  add(message: string): void {
    if (this.seen.size < this.limit) this.seen.add(message);
  }
  toJSON(): string[] {
    return [...this.seen];
  }
}

export function bump(record: Record<string, number>, key: string): void {
  record[key] = (record[key] ?? 0) + 1;
}
