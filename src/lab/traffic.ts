// Running the traffic tools inside lab namespaces and reading their JSON back.
import { tsxArgv } from "../paths.ts";
import type { ExecOptions, ExecResult } from "../system/exec.ts";
import type { TrackedProcess } from "./processes.ts";
import {
  holderConnectedSchema,
  parseClientSummary,
  parseHolderSummary,
  parseLastJsonLine,
  type ClientSummary,
  type HolderConnected,
  type HolderSummary,
} from "./traffic-summary.ts";
import { formatEndpoint } from "./tools/endpoint.ts";

export type ToolName = "echo-server" | "client" | "holder" | "dns-client";

/** What the helpers need from a lab: run or start a command in the namespace of a role. */
export interface LabRunner {
  exec(role: string, argv: readonly string[], opts?: Omit<ExecOptions, "netns">): Promise<ExecResult>;
  spawn(role: string, argv: readonly string[]): TrackedProcess;
}

/** Absolute paths, so tools start the same whatever the caller's working directory is. */
export function toolArgv(tool: ToolName, args: readonly string[]): string[] {
  return tsxArgv(`lab/tools/${tool}.ts`, args);
}

/** Tool startup (node + tsx) takes a few hundred ms; allow for a loaded machine. */
const TOOL_START_MS = 10_000;

export interface ClientOptions {
  /** Role of the namespace to run in, e.g. "lan". */
  from: string;
  dst: string;
  port: number;
  proto?: "tcp" | "udp";
  count?: number;
  parallel?: number;
  /** Source addresses, used round-robin. */
  sources?: readonly string[];
  timeoutMs?: number;
  deadlineMs?: number;
}

export function clientArgs(o: ClientOptions): string[] {
  const args = ["--host", o.dst, "--port", String(o.port), "--proto", o.proto ?? "tcp"];
  if (o.count !== undefined) args.push("--count", String(o.count));
  if (o.parallel !== undefined) args.push("--parallel", String(o.parallel));
  for (const s of o.sources ?? []) args.push("--source", s);
  if (o.timeoutMs !== undefined) args.push("--timeout-ms", String(o.timeoutMs));
  args.push("--deadline-ms", String(o.deadlineMs ?? 30_000));
  return args;
}

export async function runClient(lab: LabRunner, o: ClientOptions): Promise<ClientSummary> {
  const budget = (o.deadlineMs ?? 30_000) + (o.timeoutMs ?? 2000) + TOOL_START_MS;
  const r = await lab.exec(o.from, toolArgv("client", clientArgs(o)), { timeoutMs: budget });
  if (r.code !== 0) throw new Error(`client in ${o.from} exited ${r.code}: ${r.stderr.trim().slice(-1000)}`);
  return parseClientSummary(r.stdout);
}

export interface HolderOptions {
  from: string;
  dst: string;
  port: number;
  source?: string;
  intervalMs?: number;
  durationMs?: number;
  timeoutMs?: number;
}

export function holderArgs(o: HolderOptions): string[] {
  const args = ["--host", o.dst, "--port", String(o.port)];
  if (o.source !== undefined) args.push("--source", o.source);
  if (o.intervalMs !== undefined) args.push("--interval-ms", String(o.intervalMs));
  args.push("--duration-ms", String(o.durationMs ?? 5000));
  if (o.timeoutMs !== undefined) args.push("--timeout-ms", String(o.timeoutMs));
  return args;
}

export interface Holder {
  readonly process: TrackedProcess;
  /** The greeting line: what the server saw as our source. */
  readonly connected: HolderConnected;
  /** Resolves when the holder ends on its own (duration over, or the connection broke). */
  readonly result: Promise<HolderSummary>;
  /** End early (SIGTERM) and get the summary. */
  stop(): Promise<HolderSummary>;
}

/** Start a holder and wait until its connection is established and greeted. */
export async function startHolder(lab: LabRunner, o: HolderOptions): Promise<Holder> {
  const proc = lab.spawn(o.from, toolArgv("holder", holderArgs(o)));
  const durationMs = o.durationMs ?? 5000;
  let line: string;
  try {
    line = await proc.waitForLine(/"type":"(connected|summary)"/, TOOL_START_MS + (o.timeoutMs ?? 1000));
  } catch (err) {
    await proc.stop();
    throw err;
  }
  if (line.includes('"summary"')) {
    await proc.stop();
    throw new Error(`holder failed to connect: ${line}`);
  }
  const connected = parseLastJsonLine(line, holderConnectedSchema, "holder greeting");
  const finished = async (): Promise<HolderSummary> => {
    await proc.exited;
    return parseHolderSummary(proc.stdout());
  };
  const result = (async () => {
    // The holder stops itself after durationMs; a stuck one is killed after a grace period.
    const guard = setTimeout(() => void proc.stop(), durationMs + 5000);
    try {
      return await finished();
    } finally {
      clearTimeout(guard);
    }
  })();
  result.catch(() => undefined);
  return {
    process: proc,
    connected,
    result,
    stop: async () => {
      await proc.stop(2000);
      return finished();
    },
  };
}

export interface EchoServerOptions {
  role: string;
  name?: string;
  hold?: boolean;
  tcp?: readonly { address: string; port: number }[];
  udp?: readonly { address: string; port: number }[];
  http?: readonly { address: string; port: number }[];
  dns?: readonly { address: string; port: number }[];
}

export function echoServerArgs(o: EchoServerOptions): string[] {
  const args: string[] = [];
  if (o.name !== undefined) args.push("--name", o.name);
  if (o.hold) args.push("--hold");
  for (const kind of ["tcp", "udp", "http", "dns"] as const) {
    for (const ep of o[kind] ?? []) args.push(`--${kind}`, formatEndpoint(ep));
  }
  return args;
}

/** Start an echo server and wait until every listener is bound. */
export async function startEchoServer(lab: LabRunner, o: EchoServerOptions): Promise<TrackedProcess> {
  const proc = lab.spawn(o.role, toolArgv("echo-server", echoServerArgs(o)));
  try {
    await proc.waitForLine(/"ready":true/, TOOL_START_MS);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}
