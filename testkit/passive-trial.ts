// One blackhole trial of the uplinks' passive health against `nflb run` in an uplink lab: shared
// by test/lab/uplinks-passive.test.ts and bench/uplinks-passive.ts. Every wait is bounded.
import type { UplinkLab } from "../src/lab/uplink-lab.ts";
import { startConnRate, type Conn } from "./conn-rate.ts";
import { http, sleep, waitStatus } from "./daemon-harness.ts";

export interface TrialResult {
  /**
   * Start of the last connection that failed, after the cut (ms; 0 when none failed). The cut is
   * taken at the latest moment it is known not to have happened yet: the start of the cut command,
   * or later the start of the last connection through isp1 that still worked.
   */
  lastFailedMs: number;
  /** The same from the start of the cut command (the most conservative figure). */
  fromCommandMs: number;
  /** How long the command that cut isp1 took: the cut took effect somewhere in it. */
  cutMs: number;
  failed: number;
  /** isp1's down reason. */
  reason: string;
  /** Connections and daemon log lines around the cut, for a trial that missed its bound. */
  timeline: string;
  /**
   * The longest pause between two connection starts in the 600 ms after the cut (the client starts
   * one every 20 ms): far more says the machine was starved, the client and the daemon alike.
   */
  maxGapMs: number;
}

const RATE = 50;
/** Under a second: a SYN retransmitted after isp1 is out (flush_on_down) must not rescue it. */
const CONN_TIMEOUT_MS = 800;

/**
 * Wait until both uplinks carry traffic, open RATE new connections/s from the LAN, blackhole isp1's
 * upstream (both directions; the carrier stays up) about a second in, wait for isp1 down, restore.
 * The time to the last failed connection is measured from just before the cut command.
 */
export async function blackholeTrial(
  lab: UplinkLab,
  logs: () => Record<string, unknown>[],
): Promise<TrialResult> {
  await waitStatus(
    lab,
    (s) => s.uplinks.every((u) => u.state === "up" && u.share > 0),
    30_000,
    "both uplinks up and in the split",
  );
  const c = await startConnRate(lab, {
    rate: RATE,
    timeoutMs: CONN_TIMEOUT_MS,
    durationMs: 2600,
    perConnection: true,
  });
  let cut = 0;
  let cutDone = 0;
  let reason = "";
  let conns: Conn[] = [];
  try {
    // A random phase against the connections' and the probes' schedules.
    await sleep(1000 + Math.random() * 200);
    cut = Date.now();
    await lab.cutUpstream(1);
    cutDone = Date.now();
    const down = await waitStatus(lab, (s) => s.uplinks[0]?.state === "down", 5000, "isp1 down");
    reason = down.uplinks[0]?.reason ?? "";
  } finally {
    conns = (await c.done.catch(() => ({ conns: [] as Conn[] }))).conns;
    await lab.restoreUpstream(1);
  }
  return summarize(conns, cut, cutDone, `inet ${lab.uplink(1).router4}`, reason, logs());
}

function summarize(
  conns: Conn[],
  cut: number,
  cutDone: number,
  isp1: string,
  reason: string,
  logs: Record<string, unknown>[],
): TrialResult {
  const cutMs = cutDone - cut;
  // A connection through isp1 that worked was sent before the cut took effect.
  const worked = conns.filter((x) => x.seen === isp1 && x.t <= cutDone).map((x) => x.t);
  const cutAt = Math.max(cut, ...worked);
  const failed = conns.filter((x) => x.seen === null && x.t >= cut - 100);
  const earlier = conns.filter((x) => x.seen === null && x.t < cut - 100);
  if (earlier.length > 0) throw new Error(`${earlier.length} connection(s) failed before the cut`);
  const last = failed.at(-1);
  const rows: [number, string][] = [];
  for (const x of conns)
    if (x.t >= cut - 100 && x.t <= cut + 1500) rows.push([x.t - cut, `conn ${x.seen ?? "FAILED"}`]);
  for (const l of logs) {
    const t = Date.parse(String(l.time));
    if (t >= cut - 100 && t <= cut + 1500) rows.push([t - cut, `log ${String(l.msg)} (${String(l.reason)})`]);
  }
  const timeline = rows
    .sort((a, b) => a[0] - b[0])
    .map(([t, s]) => `${t >= 0 ? "+" : ""}${t} ms ${s}`)
    .join("\n");
  let maxGapMs = 0;
  const near = conns.filter((x) => x.t >= cut - 20 && x.t <= cut + 600);
  for (let i = 1; i < near.length; i++)
    maxGapMs = Math.max(maxGapMs, (near[i]?.t ?? 0) - (near[i - 1]?.t ?? 0));
  return {
    lastFailedMs: last ? last.t - cutAt : 0,
    fromCommandMs: last ? last.t - cut : 0,
    cutMs,
    failed: failed.length,
    reason,
    timeline,
    maxGapMs,
  };
}

/** nflb_uplink_transitions_total by `uplink/to`, from the daemon's /metrics. */
export async function transitions(lab: UplinkLab): Promise<Record<string, number>> {
  return counters(lab, "nflb_uplink_transitions_total");
}

/** nflb_uplink_passive_suspicions_total by `uplink/outcome`. */
export async function suspicions(lab: UplinkLab): Promise<Record<string, number>> {
  return counters(lab, "nflb_uplink_passive_suspicions_total");
}

/** A counter with two labels from the daemon's /metrics, by `label1/label2`. */
async function counters(lab: UplinkLab, name: string): Promise<Record<string, number>> {
  const r = await http(lab, "router", "GET", "http://127.0.0.1:9110/metrics");
  if (r.code !== 200) throw new Error(`metrics: HTTP ${r.code}`);
  const out: Record<string, number> = {};
  const re = new RegExp(`^${name}\\{\\w+="([^"]+)",\\w+="([^"]+)"\\} (\\d+)`, "gm");
  for (const m of r.body.matchAll(re)) out[`${m[1]}/${m[2]}`] = Number(m[3]);
  return out;
}
