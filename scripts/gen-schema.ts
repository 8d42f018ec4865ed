// Generates contrib/nflb.schema.json, the JSON Schema editors use for completion and checking,
// and docs/CONFIG.md, the config reference (scripts/gen-config-doc.ts), from the validation
// schema itself (src/config/schema.ts), so none of them can drift apart.
//
//   npm run gen:schema            write both files
//   npm run gen:schema -- --check exit 1 when a committed file is stale
//
// The JSON Schema describes the *input* (what a person writes: `interval: 2s`, not 2000 ms). It can
// say less than nflb's own validation: checks across keys (a `via` naming an existing uplink, one
// interface per uplink) and value checks written as code (prefix host bits, IPv6 syntax) exist only
// in `nflb check`.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as prettier from "prettier";
import * as z from "zod";
import { configSchema } from "../src/config/schema.ts";
import { CONFIG_DOC_FILE, generateConfigDoc } from "./gen-config-doc.ts";

export const SCHEMA_FILE = fileURLToPath(new URL("../contrib/nflb.schema.json", import.meta.url));

export type Json = { [k: string]: unknown };

/** Descriptions shown by editors on hover, by key path (`*` = any name, `[]` = any list item). */
export const DESCRIPTIONS: Record<string, string> = {
  "": "nflb configuration: uplinks (outgoing balancing), services (inbound, DNAT) and a cluster (shared VIP).",
  version: "Config format version; always 1.",
  mark_mask: "Bits of the packet and conntrack mark nflb may use (one contiguous run, default 0xff00).",
  table_base: "First routing table nflb uses; the uplink in slot k gets table_base + k.",
  rule_priority_base: "First ip rule priority nflb uses (a range of 1000 above it).",
  uplinks: "Links or tunnels new outgoing connections are spread over, by name.",
  "uplinks.*.interface": "The uplink's network interface, like eth1, ppp0 or wg0.",
  "uplinks.*.gateway":
    "Next hop(s), one IPv4 and/or one IPv6, or auto: learned from the default routes a DHCP client or router advertisements install for the interface (down for a family until one is learned). Omitted: learned like auto when there is such a route, else on-link, as point-to-point devices (tun0, ppp0, wg0) need.",
  "uplinks.*.weight":
    "Share of new connections (3 and 1 give 3:1); 0 = backup, used only when the others are down.",
  "uplinks.*.nat":
    "masquerade (dynamic address), snat (to the interface's address) or none (routed addresses).",
  "uplinks.*.probe": "How the uplink's health is measured; probes leave through this uplink only.",
  "uplinks.*.id":
    "Pins the uplink's slot k (mark k in mark_mask, table table_base + k); unset: the slot it had (state file), or the lowest free one.",
  "uplinks.*.capacity":
    "What the link carries in bit/s, { down, up } or one rate for both (10Mbit, 5M, 512k): overflow fills up to a share of it; status shows the measured load against it.",
  "uplinks.*.metered":
    "true: carries only rules that name it, and the balance only while every unmetered uplink is down (LTE, pay per byte).",
  "uplinks.*.priority":
    "method: overflow fills lower priorities first (default: the position in the YAML, 1, 2, 3…); equal priorities share by weight.",
  "uplinks.*.probe.method": "icmp, tcp (connect), http (GET path) or dns (a query).",
  "uplinks.*.probe.targets":
    "Addresses probed through this uplink; several, so one dead target is not a dead link. With at least two targets of each family, IPv4 and IPv6 are judged apart, each by its own targets (with one target of a family, every target judges the uplink together: one target's random loss is too noisy to move a family on) (down_after, up_after, min_targets apply to each): a family that fails leaves only that family's balancing, and the uplink stays up while the other works. With targets of one family only, that family judges the whole uplink and the other follows it.",
  "uplinks.*.probe.port": "Port for tcp/http probes.",
  "uplinks.*.probe.path": "Path for http probes.",
  "uplinks.*.probe.size": "ICMP payload bytes (a large payload makes congestion show in the RTT).",
  "uplinks.*.probe.interval": "Time between probe rounds (one round = one probe to every target).",
  "uplinks.*.probe.timeout": "A probe not answered by then is lost.",
  "uplinks.*.probe.down_after": "Consecutive failed rounds before the link is down.",
  "uplinks.*.probe.up_after": "Consecutive good rounds before it is up again.",
  "uplinks.*.probe.min_targets": "A round fails when fewer targets answer.",
  "uplinks.*.probe.max_rtt": "Optional: a round whose median RTT is above this fails.",
  "uplinks.*.probe.max_loss":
    "Optional: loss ratio (0..1) over the last 10 rounds above which the link is down.",
  "uplinks.*.probe.recover_rtt":
    "Optional low mark of max_rtt (pfSense's latency alarm): a link that is down counts only rounds with a median RTT within this toward up_after (default: max_rtt).",
  "uplinks.*.probe.recover_loss":
    "Optional low mark of max_loss: a link that is down comes back only while the loss over the last 10 rounds is within this (default: max_loss).",
  "uplinks.*.probe.max_jitter":
    "Optional: the link is down while its smoothed jitter (variation of consecutive rounds' RTTs) is above this.",
  "uplinks.*.probe.recover_jitter":
    "Optional low mark of max_jitter: a link that is down comes back only with its jitter within this (default: max_jitter).",
  "uplinks.*.passive":
    "Passive health from the uplink's live connections (on by default, with at least 2 uplinks): when `suspect_after` new TCP/UDP connections in a row through it get no answer (no SYN-ACK, RST or UDP reply) while the other uplinks' connections do, the uplink is suspect at once and re-probed through it (`confirm_rounds` fping rounds 10 ms apart, each lost unless answered within the overdue time its regular rounds taught); down only when every re-probe fails too. Needs icmp probe targets for the fast re-probe (other methods: the next `confirm_rounds` regular rounds decide). Its CPU per new connection can be cut with `balance.conntrack_events: minimal` (read what it hides first). false turns it off.",
  "uplinks.*.passive.suspect_after": "New connections in a row, none answered, that make the uplink suspect.",
  "uplinks.*.passive.min_silence":
    "The first of them has waited at least this long (longer when the link's own answers take longer: srtt + 4 × rttvar).",
  "uplinks.*.passive.timeout":
    "A connection unanswered this long counts as unanswered in status and metrics (it takes no part in the suspicion).",
  "uplinks.*.passive.confirm_rounds": "Re-probe rounds that must all fail before the uplink is down.",
  balance: "How new connections are divided among the uplinks.",
  "balance.from": "Interfaces whose new connections are balanced (default: every non-uplink interface).",
  "balance.sources": "Only these source prefixes are balanced.",
  "balance.method":
    "random, round-robin (exact weighted rotation), source-hash or source-dest-hash (sticky by address), or overflow (fill uplinks in priority order up to a share of their capacity, spill new connections to the next).",
  "balance.overflow": "Thresholds and pace of method: overflow.",
  "balance.overflow.threshold":
    "An uplink spills (new connections go to the next) when its load is above this share of its capacity, in either direction.",
  "balance.overflow.recover":
    "A spilling uplink takes new connections again when its load is below this share (below threshold: the gap keeps it from flapping).",
  "balance.overflow.interval": "How often the interfaces' byte counters are read.",
  "balance.overflow.smoothing": "Time constant of the load's moving average: longer ignores shorter bursts.",
  "balance.weights": "static, or auto: scale each uplink's weight by its measured quality.",
  "balance.local": "The router's own unbound traffic: primary (failover order) or balance (multipath).",
  "balance.primary": "Failover order for the router's own traffic and for rules without `via`.",
  "balance.flush_on_down": "Drop conntrack entries of connections on a link that went down.",
  "balance.conntrack_events":
    "What the connections nflb balances report to conntrack's event listeners while passive health runs (2 uplinks or more, one with `passive` on). all: every event, as without nflb. minimal: only their start (NEW), first answer (the UPDATE that clears UNREPLIED) and end (DESTROY), set in the kernel with `ct event set new,destroy,reply`, and passive health reads them every 100 ms instead of 25 while every uplink answers. This roughly halves passive health's CPU per new connection (lab VM, bench/RESULTS.md) and delays a detection by ~60 ms (median), but every other listener of the same network namespace no longer sees these connections' later UPDATEs (TCP state changes such as ESTABLISHED, FIN_WAIT, ASSURED, mark or helper changes): `conntrack -E`, ulogd, and conntrackd's state sync (whose backup would then hold stale states). Inbound connections and services' DNATed flows always report everything.",
  "balance.accept_local":
    "With `from`: set accept_local=1 on those interfaces, so the kernel skips the full reverse-path lookup of each forwarded IPv4 packet there (rp_filter 0 only), and drop packets that arrive there from one of the router's own addresses in nft instead. false (the default): leave the sysctl alone. Opt-in because nflb's rule does not see packets of connections already pinned to an uplink, which the kernel's check did (docs/DATAPLANE.md); the gain is 1–1.8 µs of a connection's ~150 µs of kernel time.",
  rules: "Exceptions to the balance; the first matching rule wins.",
  "rules.[].name": "A name for the rule (shown by `nflb explain`).",
  "rules.[].destination": "Destination addresses or prefixes.",
  "rules.[].source": "Source addresses or prefixes.",
  "rules.[].protocol": "tcp, udp or icmp.",
  "rules.[].port": "Destination port: 25, [80, 443] or a range '1000-2000'.",
  "rules.[].via":
    "The first healthy uplink of this list, or `main` (not balanced: the main routing table decides).",
  "rules.[].sticky": "Keep the same source+destination pair on the same uplink for this long.",
  "rules.[].domains":
    "Destinations by DNS name: the addresses nflb's DNS forwarder (`dns`) answers for these names, for their TTL (at least dns.min_ttl) and while connections to them are open. *.example.net matches the names below example.net (not example.net itself). With `destination`, either matches.",
  dns: "A DNS forwarder for the LAN: forwards every query unchanged to the upstreams and puts the addresses it answers for a rule's `domains` into that rule's sets.",
  "dns.listen":
    "Addresses the forwarder listens on (UDP and TCP): the LAN's DNS server, as DHCP announces it.",
  "dns.upstream": "Resolvers queries are forwarded to, in order (the next one after a timeout).",
  "dns.timeout":
    "An upstream that has not answered by then: the query is dropped, and the next upstream is used.",
  "dns.min_ttl": "An address stays in a rule's set at least this long after an answer (the TTL when longer).",
  "dns.max_ttl": "… and at most this long after the last answer.",
  "dns.keep":
    "An address also stays while connections to it send packets, until this long after the last one.",
  "dns.max_entries_per_rule":
    "Addresses per rule and family at most (the nft sets' size); more are not added, and counted.",
  "dns.max_entries": "Addresses in all rules' sets at most.",
  "dns.max_pending": "Queries waiting for an upstream at once; more are dropped, and counted.",
  "dns.max_tcp": "DNS-over-TCP clients served at once.",
  services: "Virtual IP:port services balanced over backend servers (DNAT), by name.",
  "services.*.listen": "The virtual IP and port clients connect to.",
  "services.*.protocol": "tcp or udp.",
  "services.*.scheduler": "round-robin, random, source-hash, maglev (consistent hashing) or least-conn.",
  "services.*.snat": "Also SNAT to the balancer, so backends need no route back through it.",
  "services.*.persistence":
    "Keep each client on the backend it got for this long after its last new connection (IPVS persistence_timeout), whatever the scheduler. A client is its IPv4 address, or its IPv6 /64. A backend that is down, drained or in maint keeps nobody: its clients are balanced again and remembered on their new backend.",
  "services.*.check": "Backend health check.",
  "services.*.check.method":
    "tcp (connect), http (GET path, expect_status, expect_body), https (the same over TLS, with sni) or none.",
  "services.*.check.interval": "Time between checks of one backend.",
  "services.*.check.timeout": "A check not answered by then failed.",
  "services.*.check.rise": "Consecutive good checks before a backend is up.",
  "services.*.check.fall": "Consecutive failed checks before a backend is down.",
  "services.*.check.path": "Path for http checks.",
  "services.*.check.expect_status": "HTTP status an http check expects (default: any 2xx/3xx).",
  "services.*.check.port": "Port to check, when not the backend's own.",
  "services.*.check.passive":
    "Passive health from live TCP connections (HAProxy's observe layer4): true, or { fall, window, timeout }. A backend with `fall` refused or unanswered SYNs among its last `window` new connections (default 5 of 10; unanswered = no SYN-ACK within `timeout`, default 1s) is down at once; its active check (needed) brings it back after `rise` good checks.",
  "services.*.check.passive.fall": "Failed new connections among the last `window` that take a backend down.",
  "services.*.check.passive.window": "How many of a backend's latest new connections are looked at.",
  "services.*.check.passive.timeout": "A SYN the backend has not answered by then counts as failed.",
  "services.*.check.host": "http/https: the Host header (default: the backend's ADDRESS:PORT).",
  "services.*.check.sni":
    "https: the server name sent in the TLS handshake (default: host's name, when it is a name; an address is never sent).",
  "services.*.check.expect_body":
    "http/https: text the body must contain; only its first 64 KiB are read, within the check's timeout.",
  "services.*.check.ca":
    "https: a PEM CA file; the backend's certificate and name (sni) are then verified. Without it the certificate is not verified: the check asks whether the server at that address answers as it should, and backends often hold certificates for the public name, self-signed or internal ones. A cluster member never takes this path from etcd.",
  "services.*.backends": "The servers behind the VIP.",
  "services.*.backends.[].address": "Backend ADDRESS:PORT.",
  "services.*.backends.[].backup":
    "A sorry server (keepalived): it takes new connections only while no regular backend is up (down, drained and maint all count as not up); when one comes back, new connections go to it again.",
  "services.*.backends.[].weight":
    "Share of new connections; 0 = draining (no new connections, existing ones finish).",
  cluster: "Several nodes share one virtual IP with no single point of failure.",
  "cluster.name": "Cluster name (one key prefix in the coordinator).",
  "cluster.node": "This node's name (or --node on the command line).",
  "cluster.vip": "The shared virtual IP(s): at most one IPv4 and one IPv6.",
  "cluster.interface": "Interface that carries the VIP.",
  "cluster.buckets": "Hash buckets spread over the live nodes.",
  "cluster.hash": "source (a client stays on one node) or source-port (spread one client's connections).",
  "cluster.etcd": "etcd endpoints: membership leases, bucket ownership, shared config.",
  "cluster.lease": "Membership lease: a node silent for this long loses its buckets.",
  "cluster.etcd_tls": "TLS to etcd (https:// endpoints): files, read at start.",
  "cluster.etcd_tls.ca": "PEM CA that signed etcd's server certificate (default: the system's CAs).",
  "cluster.etcd_tls.cert": "PEM client certificate, for etcd's --client-cert-auth (with key).",
  "cluster.etcd_tls.key": "PEM client key (not world-readable).",
  "cluster.etcd_auth": "etcd user: a token from /v3/auth/authenticate rides on every request.",
  "cluster.etcd_auth.username": "etcd user name.",
  "cluster.etcd_auth.password_file": "File holding the password (not world-readable); never inline.",
  "cluster.key_file":
    "Shared secret of the witness reports (HMAC-SHA256), not world-readable; none: no outage mode.",
  "cluster.push_public_key":
    "Ed25519 public key (PEM) pushed configs must be signed with; none: pushes refused.",
  api: "The daemon's HTTP API and dashboard.",
  "api.listen": "Address the API listens on (--api overrides).",
  "api.token": "Bearer token for POSTs (or NFLB_API_TOKEN); without one only loopback may POST.",
  "api.hosts":
    "Host names browsers may reach the API by (NAME or NAME:PORT), besides its IP addresses and localhost; other names are refused (DNS rebinding).",
  on_change: "Command (argv) run on every uplink/backend state change; the state is in its environment.",
};

/** The JSON Schema object, descriptions attached (also the source of docs/CONFIG.md). */
export function buildSchema(): Json {
  const schema = z.toJSONSchema(configSchema, { io: "input", unrepresentable: "throw" }) as Json;
  const seen = new Set<string>();
  const walk = (node: unknown, path: string) => {
    if (!node || typeof node !== "object") return;
    const n = node as Json;
    // zod names `.startsWith()` as a format no validator or editor knows; the pattern beside it says it.
    if (n.format === "starts_with") delete n.format;
    const d = DESCRIPTIONS[path];
    if (d !== undefined && !seen.has(path)) {
      // A key's own description first; the value type's (from the validation schema) in brackets.
      n.description = typeof n.description === "string" ? `${d.replace(/\.$/, "")} (${n.description}).` : d;
      seen.add(path);
    }
    const join = (k: string) => (path ? `${path}.${k}` : k);
    if (n.properties) for (const [k, v] of Object.entries(n.properties as Json)) walk(v, join(k));
    if (n.additionalProperties && typeof n.additionalProperties === "object")
      walk(n.additionalProperties, join("*"));
    if (n.items) walk(n.items, join("[]"));
    for (const alt of (n.anyOf as unknown[] | undefined) ?? []) walk(alt, path);
  };
  walk(schema, "");
  const missing = Object.keys(DESCRIPTIONS).filter((p) => !seen.has(p));
  if (missing.length)
    throw new Error(`descriptions for keys the schema does not have: ${missing.join(", ")}`);
  // The one cross-key rule JSON Schema can state (crossCheck's "at least one of"), so an editor flags
  // an empty config too.
  const jobs = ["uplinks", "services", "cluster"].map((k) => ({ required: [k] }));
  return { $schema: schema.$schema, title: "nflb configuration", ...schema, anyOf: jobs };
}

/** The generated schema as the text of the committed file (formatted as prettier would). */
export async function generateSchema(): Promise<string> {
  const out = buildSchema();
  const options = (await prettier.resolveConfig(SCHEMA_FILE)) ?? {};
  return prettier.format(JSON.stringify(out, null, 2), { ...options, parser: "json" });
}

async function main(): Promise<void> {
  // The config reference is generated from the same schema, so both are written (or checked) together.
  const outputs: [string, string][] = [
    [SCHEMA_FILE, await generateSchema()],
    [CONFIG_DOC_FILE, await generateConfigDoc()],
  ];
  if (process.argv.includes("--check")) {
    let stale = false;
    for (const [file, text] of outputs) {
      let current = "";
      try {
        current = readFileSync(file, "utf8");
      } catch {
        // missing counts as stale
      }
      if (current !== text) {
        process.stderr.write(`${file} is stale: run npm run gen:schema\n`);
        stale = true;
      } else process.stdout.write(`${file} is up to date\n`);
    }
    if (stale) process.exit(1);
    return;
  }
  for (const [file, text] of outputs) {
    writeFileSync(file, text);
    process.stdout.write(`wrote ${file}\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
