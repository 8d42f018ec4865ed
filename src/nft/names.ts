/**
 * Every name nflb gives an nftables object, in one place (docs/DATAPLANE.md lists them with what
 * they do). Names built from user input are prefixed, so no uplink or service name can collide
 * with an nft keyword or with another kind of object.
 */

export const TABLE = "nflb";
export const FAMILY = "inet";
export const TABLE_REF = `${FAMILY} ${TABLE}`;
/** The cluster's ARP rewrite lives in a table of its own (the inet family cannot see ARP). */
export const ARP_TABLE_REF = `arp ${TABLE}`;

/** Base chains of `inet nflb`. */
export const BASE_CHAINS = {
  prerouting: "prerouting",
  output: "output",
  prerouting_dnat: "prerouting_dnat",
  output_dnat: "output_dnat",
  postrouting_nat: "postrouting_nat",
  input_filter: "input_filter",
  svc_bytes: "svc_bytes",
  cluster_pre: "cluster_pre",
} as const;

// Uplinks (src/plan/nft-uplinks.ts).
export const UPLINK_IFACES = "uplink_ifaces";
export const BALANCE_FROM = "balance_from";
export const balanceSources = (fam: 4 | 6) => `balance_src${fam}`;
export const RESTORE_MARK = "restore_mark";
export const INBOUND = "inbound";
export const EGRESS = "egress";
/** The split of one family's new connections: each family fails over on its own. */
export const splitMap = (fam: 4 | 6) => `split${fam}`;
/** The uplinks live for one family: a sticky choice of an uplink whose family is down is made again. */
export const stickyLive = (fam: 4 | 6) => `sticky_live${fam}`;
export const MAIN_MARK = "main_mark";
export const MAIN_PIN = "main_pin";
export const BALANCE = "balance";
/** One family's balancing (`balance` dispatches by family): its split's modulus is its own. */
export const balanceChain = (fam: 4 | 6) => `balance${fam}`;
export const DECIDE = "decide";
export const pinChain = (u: string) => `up_${u}_pin`;
export const markChain = (u: string) => `up_${u}_mark`;
export const egressChain = (u: string) => `up_${u}_egress`;
/** Named counter of an uplink's new connections (nflb_uplink_connections_total). */
export const connCounter = (u: string) => `up_${u}_conns`;
export const ruleChain = (id: number) => `rule_${id}`;
export const ruleTargetChain = (id: number) => `rule_${id}_via`;
export const ruleSet = (id: number, what: "dst" | "src", fam: 4 | 6) => `rule_${id}_${what}${fam}`;
export const stickyMap = (id: number, fam: 4 | 6) => `rule_${id}_sticky${fam}`;
/**
 * A domain rule's sets, named by the rule (not its position) so a reload that reorders rules keeps
 * each rule's addresses: what the DNS forwarder answered (`dom_NAME_4`), and what connections still
 * use (`dom_NAME_keep4`, refreshed by their packets). `dom_NAME` sends a new connection to the rule.
 */
export const domainSet = (rule: string, fam: 4 | 6) => `dom_${rule}_${fam}`;
export const domainKeepSet = (rule: string, fam: 4 | 6) => `dom_${rule}_keep${fam}`;
export const domainChain = (rule: string) => `dom_${rule}`;
/** Jumped to by packets of established connections: refreshes the keep sets. */
export const DOMAINS_KEEP = "domains_keep";

// `nflb exec --via` (src/plan/nft-exec.ts).
export const EXEC_MAP = "exec_via";

// Services (src/plan/nft-services.ts).
export const serviceChain = (s: string) => `svc_${s}`;
/** A service's slot table: slot → backend address . port (or, with persistence, → its chain). */
export const slotsMap = (s: string) => `svc_${s}_slots`;
/**
 * A slot table shared by the round-robin, source-hash and maglev services of one family and
 * protocol whose names hash to group `g` (src/plan/nft-groups.ts): (VIP . port . slot) → backend
 * address . port. No service-made name can take this form (theirs end in `_slots`).
 */
export const groupSlotsMap = (fam: 4 | 6, protocol: string, g: number) => `svc_slots${fam}_${protocol}_${g}`;
/** Chain of one backend (K: config order), only for services with `persistence`. */
export const backendChain = (s: string, index: number) => `svc_${s}_b${index}`;
/**
 * Per-backend counters are elements, not named objects (a named object per backend made nft read
 * a million of them back before every command): sets declared `counter`, keyed by
 * VIP . protocol . port . backend address . backend port.
 */
export const SVC_CONNS = { 4: "svc_conns4", 6: "svc_conns6" } as const;
export const SVC_BYTES = {
  to: { 4: "svc_bytes_to4", 6: "svc_bytes_to6" },
  from: { 4: "svc_bytes_from4", 6: "svc_bytes_from6" },
} as const;
/**
 * The name under which `readNflbCounters` reports a backend's element counters (new connections;
 * `NAME_to`/`NAME_from`: bytes), from the element's key fields (canonical addresses).
 */
export const backendCounterKey = (
  family: 4 | 6,
  vip: string,
  protocol: string,
  port: number,
  addr: string,
  backendPort: number,
) => `svc${family} ${vip} ${protocol} ${port} ${addr} ${backendPort}`;
export const SVC_DISPATCH = { 4: "svc_dispatch4", 6: "svc_dispatch6" } as const;
export const SVC_SNAT = { 4: "svc_snat4", 6: "svc_snat6" } as const;
export const SVC_VIPS = { 4: "svc_vips4", 6: "svc_vips6" } as const;
export const SVC_HAIRPIN = "svc_hairpin";
/**
 * A persistent service's memory of client → backend (packet-owned, dynamic): its name carries a
 * tag of the backend list, so a reload that changes which backend an index means starts afresh.
 */
export const persistMap = (s: string, tag: string) => `svc_${s}_persist_${tag}`;
/** Backend index (as a `meta priority` value) → its chain, for the backends that are up. */
export const persistGoMap = (s: string) => `svc_${s}_persist_go`;

// Cluster (src/cluster/render.ts).
export const OWNED_SET = "cluster_owned";
export const CLUSTER_IN = "cluster_in";
export const CLUSTER_ARP_OUT = "cluster_arp_out";
