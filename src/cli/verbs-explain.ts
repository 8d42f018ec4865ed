import type { Command } from "commander";
import { Option } from "commander";
import { assignmentKey, assignmentSchema } from "../cluster/keys.ts";
import type { Assignment } from "../cluster/ownership.ts";
import { DEFAULT_CONFIG_PATH, loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { versionOf } from "../daemon/model.ts";
import type { StatusJson } from "../daemon/status.ts";
import { isClusterVip } from "../explain/cluster.ts";
import { explain, type ExplainInputs } from "../explain/explain.ts";
import { formatExplanation } from "../explain/format.ts";
import { healthFromStatus, statusSummary, stickyMarkOf } from "../explain/live.ts";
import { parseQuery, type Query } from "../explain/packet.ts";
import { parseHostPort } from "../net/ip.ts";
import { allHealthy } from "../plan/desired.ts";
import type { Facts } from "../plan/types.ts";
import { allUp, planUplinks } from "../plan/uplinks.ts";
import { stickyMap } from "../nft/names.ts";
import { EtcdClient } from "../system/etcd.ts";
import { listJson } from "../system/nft.ts";
import { readFacts } from "./load.ts";

const ASK_TIMEOUT_MS = 1500;

interface Opts {
  config: string;
  api?: string;
  iif?: string;
  sport?: string;
  local?: boolean;
  offline?: boolean;
  json?: boolean;
}

/** explain: which rule, uplink, backend or cluster node a new connection gets, and why. */
export function registerExplainVerbs(program: Command): void {
  program
    .command("explain")
    .description(
      "which rule matches a new connection, and which uplink, backend or cluster node it gets now, and why",
    )
    .argument("<src>", "source address")
    .argument("<dst>", "destination address")
    .argument("[proto]", "tcp, udp or icmp")
    .argument("[port]", "destination port (tcp, udp)")
    .addOption(new Option("-c, --config <file>", "config file").default(DEFAULT_CONFIG_PATH))
    .option("--api <host:port>", "ask this daemon for live health (default: the config's api.listen)")
    .option(
      "--iif <interface>",
      "the interface the connection arrives on (default: a balanced LAN interface)",
    )
    .option("--sport <port>", "source port (for a cluster hashing on source-port)")
    .option("--local", "the router's own traffic (implied when SRC is one of its addresses)")
    .option("--offline", "ask nothing: no daemon, kernel or etcd; every uplink and backend assumed up")
    .option("--json", "print the explanation as JSON")
    .addHelpText(
      "after",
      `
Health comes from the running daemon (GET /api/v1/status) when it answers; otherwise every
uplink and backend is assumed up, and the output says so. Hash methods (source-hash,
source-dest-hash, maglev, the cluster's buckets) are computed exactly as the kernel does.

Examples:
  nflb explain 192.168.1.23 66.218.65.10 tcp 443          # which rule and uplink
  nflb explain 10.0.0.5 203.0.113.10 tcp 80 --json        # which backend of a service
  nflb explain 198.51.100.7 192.168.0.2 tcp 80 --sport 40000   # which cluster node`,
    )
    .action(
      async (
        src: string,
        dst: string,
        proto: string | undefined,
        port: string | undefined,
        o: Opts,
        cmd: Command,
      ) => {
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
      },
    );
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
    facts = await readFacts();
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

  const sticky = await readSticky(c, q, facts);
  if (sticky) inputs.sticky = sticky;
  if (c.cluster && isClusterVip(c.cluster, q)) inputs.assignment = await readAssignment(c);
  return { inputs, notes };
}

async function askDaemon(api: string): Promise<{ status: StatusJson } | { error: string }> {
  const hp = parseHostPort(api);
  if ("error" in hp) return { error: hp.error };
  const host = hp.addr.family === 6 ? `[${hp.addr.text}]` : hp.addr.text;
  try {
    const res = await fetch(`http://${host}:${hp.port}/api/v1/status`, {
      signal: AbortSignal.timeout(ASK_TIMEOUT_MS),
    });
    if (!res.ok) return { error: `HTTP ${res.status}` };
    return { status: (await res.json()) as StatusJson };
  } catch (e) {
    return { error: (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message };
  }
}

/** What each sticky rule's kernel map remembers for this pair; a map that cannot be read is left out. */
async function readSticky(c: Config, q: Query, facts: Facts): Promise<Map<number, number | null> | null> {
  const plan = c.uplinks ? planUplinks(c, allUp(c), facts) : null;
  const rules = plan?.rules.filter((r) => r.stickyMs !== undefined) ?? [];
  if (rules.length === 0) return null;
  const out = new Map<number, number | null>();
  for (const r of rules) {
    const items = await listJson(["map", "inet", "nflb", stickyMap(r.id, q.src.family)]).catch(() => []);
    if (items.length) out.set(r.id, stickyMarkOf(items, q));
  }
  return out;
}

async function readAssignment(c: Config): Promise<Assignment | null | undefined> {
  if (!c.cluster) return undefined;
  try {
    const kv = await new EtcdClient(c.cluster.etcd, { timeoutMs: ASK_TIMEOUT_MS }).get(
      assignmentKey(c.cluster.name),
    );
    if (!kv) return null;
    const a = assignmentSchema.safeParse(JSON.parse(kv.value));
    return a.success && a.data.owners.length === a.data.buckets ? a.data : null;
  } catch {
    return undefined;
  }
}
