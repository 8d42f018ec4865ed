import type { Command } from "commander";
import { assignmentKey, assignmentSchema } from "../cluster/keys.ts";
import type { Assignment } from "../cluster/ownership.ts";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { versionOf } from "../daemon/model.ts";
import type { StatusJson } from "../daemon/status.ts";
import { isClusterVip } from "../explain/cluster.ts";
import { explain, type ExplainInputs } from "../explain/explain.ts";
import { formatExplanation } from "../explain/format.ts";
import { healthFromStatus, statusSummary } from "../explain/live.ts";
import { parseQuery, type Query } from "../explain/packet.ts";
import { parseHostPort } from "../net/ip.ts";
import { allHealthy } from "../plan/desired.ts";
import type { Facts } from "../plan/types.ts";
import { listTableText } from "../system/nft.ts";
import { call } from "./api-client.ts";
import { readFacts } from "./load.ts";
import { readSlotFacts } from "../apply/uplink-slots.ts";
import type { ExplainOpts } from "./verbs-explain.ts";

const ASK_TIMEOUT_MS = 1500;

type Opts = ExplainOpts;

export async function explainAction(
  src: string,
  dst: string,
  proto: string | undefined,
  port: string | undefined,
  o: ExplainOpts,
  cmd: Command,
): Promise<void> {
  const q = parseQuery({ src, dst, proto, port, sport: o.sport, iif: o.iif, local: o.local });
  if ("error" in q) cmd.error(`error: ${q.error}`);
  if (o.api !== undefined && "error" in parseHostPort(o.api))
    cmd.error(`error: --api wants HOST:PORT, not ${o.api}`);
  const loaded = await loadConfig(o.config);
  const c = loaded.config;
  const inputs = await gather(c, loaded.text, q, o);
  const e = explain(c, q, inputs.inputs);
  e.notes.push(...inputs.notes);
  process.stdout.write(o.json ? JSON.stringify(e, null, 2) + "\n" : formatExplanation(e));
}

/** Everything explain reads from the running system; each source is optional and says when it failed. */
async function gather(
  c: Config,
  text: string,
  q: Query,
  o: Opts,
): Promise<{ inputs: ExplainInputs; notes: string[] }> {
  const notes: string[] = [];
  const assumed = (why: string): ExplainInputs => ({
    health: allHealthy(c),
    healthSource: `assumed: ${why}, so every uplink and backend is taken as up`,
    facts: { interfaces: new Map() },
  });
  if (o.offline) return { inputs: assumed("--offline"), notes };

  let facts: Facts = { interfaces: new Map() };
  try {
    // With the slots the state file records: marks and tables as the kernel has them.
    facts = { ...(await readFacts()), ...(await readSlotFacts(c).catch(() => ({}))) };
  } catch (e) {
    notes.push(`this host's interfaces could not be read (${(e as Error).message})`);
  }

  const api = o.api ?? c.api.listen;
  const status = await askDaemon(api);
  let inputs: ExplainInputs;
  if ("error" in status) {
    inputs = { ...assumed(`no daemon answers at ${api} (${status.error})`), facts };
  } else {
    const s = status.status;
    inputs = {
      health: healthFromStatus(c, s),
      healthSource: `live from the daemon at ${api}${s.uplinks.length ? ` (${statusSummary(s)})` : ""}`,
      facts,
    };
    if (s.config_version && s.config_version !== versionOf(text))
      notes.push(
        `the daemon runs another version of the config (${s.config_file}); this answer uses ${o.config}`,
      );
    if (s.keeping_last_data_plane)
      notes.push(
        "every uplink is down and the daemon keeps the last data plane: the kernel still uses the old split",
      );
  }

  // The kernel's own table: the trace then sees exactly what packets meet, sticky memory included.
  const table = await listTableText("inet", "nflb").catch(() => null);
  if (table !== null) inputs.ruleset = table;
  else notes.push("the kernel's nflb table could not be read: traced over the table the config renders");
  if (c.cluster && isClusterVip(c.cluster, q)) inputs.assignment = await readAssignment(c);
  return { inputs, notes };
}

async function askDaemon(api: string): Promise<{ status: StatusJson } | { error: string }> {
  const hp = parseHostPort(api);
  if ("error" in hp) return { error: hp.error };
  const host = hp.addr.family === 6 ? `[${hp.addr.text}]` : hp.addr.text;
  try {
    const t = { base: `http://${host}:${hp.port}`, token: null };
    const a = await call<StatusJson>(t, "GET", "/api/v1/status", { timeoutMs: ASK_TIMEOUT_MS });
    return a.code === 200 ? { status: a.body } : { error: `HTTP ${a.code}` };
  } catch (e) {
    // NoDaemonError says "no daemon answers at URL: WHY"; the caller names the address itself.
    return { error: (e as Error).message.replace(/^no daemon answers at \S+: /, "") };
  }
}

async function readAssignment(c: Config): Promise<Assignment | null | undefined> {
  if (!c.cluster) return undefined;
  try {
    // The etcd client loads only when a cluster VIP is explained.
    const { clusterEtcdClient } = await import("../cluster/secrets.ts");
    const etcd = await clusterEtcdClient(c.cluster, { timeoutMs: ASK_TIMEOUT_MS });
    const kv = await etcd.get(assignmentKey(c.cluster.name));
    if (!kv) return null;
    const a = assignmentSchema.safeParse(JSON.parse(kv.value));
    return a.success && a.data.owners.length === a.data.buckets ? a.data : null;
  } catch {
    return undefined;
  }
}
