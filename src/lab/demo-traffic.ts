// The demo's steady traffic: RATE new TCP connections per second from a LAN client, spread over
// weighted targets, for at most DURATION. Each connection reads the server's one-line greeting
// (which names the source address it saw, i.e. the uplink's NAT address or the client behind a
// backend) and closes. Prints a JSON progress line every few seconds and a summary at the end.
//
//   demo-traffic.ts --targets JSON --rate N --duration-ms D
//
// Bounded: at most 500 connections/s, at most one hour, at most 1000 in flight (extra ones are
// skipped and counted), each connection limited by a timeout.
import { parseArgs } from "node:util";
import * as z from "zod";
import { isEntry, tsxArgv } from "../paths.ts";
import { tcpLine } from "./tcp-line.ts";
import { boundedInt, plainAddress } from "./tools/endpoint.ts";

export const trafficTargetSchema = z.strictObject({
  label: z.string().min(1).max(60),
  address: z.ipv4().or(z.ipv6()),
  port: z.number().int().min(1).max(65535),
  weight: z.number().int().min(1).max(1000),
});
export type TrafficTarget = z.infer<typeof trafficTargetSchema>;

export const TRAFFIC_LIMITS = { maxRate: 500, maxDurationMs: 3_600_000, maxInFlight: 1000 } as const;
export const TRAFFIC_DEFAULTS = { rate: 20, durationMs: 600_000, timeoutMs: 2000, reportMs: 5000 } as const;

export interface TrafficOptions {
  targets: readonly TrafficTarget[];
  rate: number;
  durationMs: number;
}

/** This file, also when the module runs inside the CLI bundle (where import.meta.url is the bundle). */
const SCRIPT = "lab/demo-traffic.ts";

/** The command line that runs this file (inside a namespace: wrap it with `ip netns exec`). */
export function trafficArgv(o: TrafficOptions): string[] {
  return tsxArgv(SCRIPT, [
    "--targets",
    JSON.stringify(o.targets),
    "--rate",
    String(o.rate),
    "--duration-ms",
    String(o.durationMs),
  ]);
}

export interface TrafficReport {
  type: "progress" | "summary";
  elapsedMs: number;
  ok: number;
  failed: number;
  /** Not started because too many were still in flight. */
  skipped: number;
  byTarget: Record<string, { ok: number; failed: number }>;
  /** Greeting → count: which source address (uplink) or backend each connection reached. */
  bySeen: Record<string, number>;
  errors: string[];
}

/** Pick a target by weight; `r` is uniform in [0, 1). */
export function pickTarget<T extends { weight: number }>(targets: readonly T[], r: number): T {
  const total = targets.reduce((s, t) => s + t.weight, 0);
  let x = r * total;
  for (const t of targets) {
    if (x < t.weight) return t;
    x -= t.weight;
  }
  const last = targets[targets.length - 1];
  if (!last) throw new Error("no targets");
  return last;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      targets: { type: "string" },
      rate: { type: "string" },
      "duration-ms": { type: "string" },
    },
    strict: true,
  });
  const targets = z
    .array(trafficTargetSchema)
    .min(1)
    .parse(JSON.parse(values.targets ?? "[]"));
  const rate = boundedInt(values.rate, "rate", TRAFFIC_DEFAULTS.rate, 1, TRAFFIC_LIMITS.maxRate);
  const durationMs = boundedInt(
    values["duration-ms"],
    "duration-ms",
    TRAFFIC_DEFAULTS.durationMs,
    1,
    TRAFFIC_LIMITS.maxDurationMs,
  );

  const started = Date.now();
  const report: TrafficReport = {
    type: "progress",
    elapsedMs: 0,
    ok: 0,
    failed: 0,
    skipped: 0,
    byTarget: Object.fromEntries(targets.map((t) => [t.label, { ok: 0, failed: 0 }])),
    bySeen: {},
    errors: [],
  };
  const errors = new Set<string>();
  let launched = 0;
  let inFlight = 0;

  const print = (type: TrafficReport["type"]) => {
    report.type = type;
    report.elapsedMs = Date.now() - started;
    report.errors = [...errors];
    process.stdout.write(JSON.stringify(report) + "\n");
  };

  const launch = () => {
    if (inFlight >= TRAFFIC_LIMITS.maxInFlight) {
      report.skipped++;
      return;
    }
    const t = pickTarget(targets, Math.random());
    const counts = report.byTarget[t.label] ?? (report.byTarget[t.label] = { ok: 0, failed: 0 });
    inFlight++;
    tcpLine({ host: t.address, port: t.port, timeoutMs: TRAFFIC_DEFAULTS.timeoutMs }).then(
      (line) => {
        inFlight--;
        report.ok++;
        counts.ok++;
        const key = `${t.label}: ${line.split(" ").map(plainAddress).join(" ")}`;
        if (key in report.bySeen || Object.keys(report.bySeen).length < 100)
          report.bySeen[key] = (report.bySeen[key] ?? 0) + 1;
      },
      (err: Error) => {
        inFlight--;
        report.failed++;
        counts.failed++;
        if (errors.size < 20) errors.add(`${t.label}: ${err.message}`);
      },
    );
  };

  let finishing = false;
  const finish = () => {
    if (finishing) return;
    finishing = true;
    clearInterval(tick);
    clearInterval(progress);
    // Let connections in flight finish (each is bounded by its timeout) before the summary.
    const waitStart = Date.now();
    const drain = setInterval(() => {
      if (inFlight > 0 && Date.now() - waitStart < TRAFFIC_DEFAULTS.timeoutMs + 500) return;
      clearInterval(drain);
      print("summary");
      process.exit(0);
    }, 50);
  };

  const tick = setInterval(() => {
    const elapsed = Date.now() - started;
    if (elapsed >= durationMs) return finish();
    const due = Math.floor((rate * elapsed) / 1000);
    // After a stall, do not fire more than one second's worth at once.
    if (due - launched > rate) launched = due - rate;
    while (launched < due) {
      launched++;
      launch();
    }
  }, 50);
  const progress = setInterval(() => print("progress"), TRAFFIC_DEFAULTS.reportMs);
  process.once("SIGTERM", finish);
  process.once("SIGINT", finish);
}

if (isEntry(SCRIPT)) await main();
