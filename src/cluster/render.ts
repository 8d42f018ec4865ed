import type { Config, ClusterConfig } from "../config/schema.ts";
import { canonicalV6, parseAddr } from "../net/ip.ts";
import type { Element, NftObject, NftTable } from "../nft/model.ts";
import {
  ARP_TABLE_REF,
  BASE_CHAINS,
  CLUSTER_ARP_OUT,
  CLUSTER_IN,
  OWNED_SET,
  TABLE,
  TABLE_REF,
} from "../nft/names.ts";
import { chain, set } from "../nft/objects.ts";
import { replaceElements } from "../nft/diff.ts";
import { hex, q } from "../nft/text.ts";
import type { NftSection } from "../plan/nft-table.ts";
import { fnv1a } from "./ownership.ts";

/**
 * The cluster's data plane, as model objects (src/nft/model.ts). Pure.
 *
 * Every node receives every packet for the VIP (frames go to a shared multicast MAC, which a
 * switch floods). The input filter lets a node take a NEW connection only when `jhash` of the
 * source falls in a bucket of `cluster_owned`; packets of connections it holds pass; everything
 * else for the VIP is dropped silently so that no node ever resets another node's connection.
 */
export { ARP_TABLE_REF, OWNED_SET };

export interface ClusterPlan {
  name: string;
  iface: string;
  vip4: string | null;
  vip6: string | null;
  buckets: number;
  hash: "source" | "source-port";
  /** jhash seed: the same on every node, derived from the cluster name. */
  seed: number;
  /** The shared multicast MAC each VIP's frames are sent to. */
  mac4: string | null;
  mac6: string | null;
}

/** Microsoft NLB's multicast-mode convention: 03:bf followed by the last four bytes of the address. */
export function clusterMac(vip: string): string {
  const a = parseAddr(vip);
  if (!a) throw new Error(`not an address: ${vip}`);
  const bytes = a.family === 4 ? a.text.split(".").map(Number) : v6Bytes(a.text).slice(12);
  return ["03", "bf", ...bytes.map((b) => b.toString(16).padStart(2, "0"))].join(":");
}

function v6Bytes(text: string): number[] {
  const [head = "", tail] = canonicalV6(text).split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return groups.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

export function clusterSeed(name: string): number {
  return fnv1a(`nflb-cluster:${name}`);
}

export function planCluster(c: ClusterConfig): ClusterPlan {
  const vip4 = c.vip.find((v) => parseAddr(v)?.family === 4) ?? null;
  const v6 = c.vip.find((v) => parseAddr(v)?.family === 6);
  const vip6 = v6 ? canonicalV6(v6) : null;
  return {
    name: c.name,
    iface: c.interface,
    vip4,
    vip6,
    buckets: c.buckets,
    hash: c.hash,
    seed: clusterSeed(c.name),
    mac4: vip4 ? clusterMac(vip4) : null,
    mac6: vip6 ? clusterMac(vip6) : null,
  };
}

export interface OwnedElements {
  buckets: readonly number[];
  timeoutMs: number;
}

/** The owned set, declared once: the full table and the agent's updates write the same declaration. */
const OWNED_DECL = set(OWNED_SET, "numgen random mod 1", [], { flags: ["timeout"], owner: "external" });

/** The owned buckets as elements, each lapsing by itself (the kernel-side fence). */
export function ownedElements(owned: OwnedElements | undefined | null): Element[] {
  if (!owned || owned.timeoutMs < 1) return [];
  const timeout = `${Math.round(owned.timeoutMs)}ms`;
  return owned.buckets.map((b) => ({ key: `${b}`, timeout }));
}

/** The bucket lookups: one per family; source-port hashing keeps port-less protocols on the source. */
function lookups(p: ClusterPlan): string[] {
  const tail = `mod ${p.buckets} seed ${hex(p.seed)} @${OWNED_SET} accept`;
  const out: string[] = [];
  for (const [fam, saddr, vip] of [
    ["ipv4", "ip saddr", p.vip4],
    ["ipv6", "ip6 saddr", p.vip6],
  ] as const) {
    if (!vip) continue;
    if (p.hash === "source-port") {
      out.push(`meta nfproto ${fam} meta l4proto { tcp, udp } jhash ${saddr} . th sport ${tail}`);
      out.push(`meta nfproto ${fam} meta l4proto != { tcp, udp } jhash ${saddr} ${tail}`);
    } else {
      out.push(`meta nfproto ${fam} jhash ${saddr} ${tail}`);
    }
  }
  return out;
}

export interface ClusterNft {
  /** Declarations and the cluster's own chains, for the `inet nflb` table. */
  section: NftSection;
  /** Rules for the table's input base chain. */
  input: string[];
  /** A second, ARP-only table (`arp nflb`); null without an IPv4 VIP. */
  arpTable: NftTable | null;
}

/**
 * The owned set's elements belong to the cluster agent, not to the plan: the daemon's diff leaves
 * them alone, the agent replaces them (`renderOwnedUpdate`), and a full replace carries what the
 * agent holds at that moment.
 */
export function buildCluster(p: ClusterPlan, owned?: OwnedElements): ClusterNft {
  const objects: NftObject[] = [{ ...OWNED_DECL, elements: ownedElements(owned) }];
  // Mid-stream packets of connections another node holds look NEW to this node's conntrack
  // (tcp_loose) or INVALID: both are dropped, never answered with a reset.
  const filter = [
    "ct state established,related accept",
    "ct state invalid drop",
    "meta l4proto tcp tcp flags & (fin | syn | rst | ack) != syn drop",
    ...lookups(p),
    "drop",
  ];
  objects.push(chain(CLUSTER_IN, filter));
  // TCP discards frames that arrived for a multicast MAC; the VIP's do, by design (xt_cluster does
  // the same). pkttype can only be set before routing, hence a base chain of its own.
  const pre: string[] = [];
  if (p.vip4) pre.push(`ip daddr ${p.vip4} meta pkttype multicast meta pkttype set host`);
  if (p.vip6) pre.push(`ip6 daddr ${p.vip6} meta pkttype multicast meta pkttype set host`);
  objects.push(
    chain(BASE_CHAINS.cluster_pre, pre, {
      type: "filter",
      hook: "prerouting",
      priority: "mangle - 5",
      policy: "accept",
    }),
  );

  const input: string[] = [];
  if (p.vip4) input.push(`iifname ${q(p.iface)} ip daddr ${p.vip4} jump ${CLUSTER_IN}`);
  if (p.vip6) {
    // A neighbour advertisement would carry this node's unicast MAC: the router needs a static entry.
    const target = `0x${v6Bytes(p.vip6)
      .map((b) => b.toString(16).padStart(2, "0"))
      .join("")}`;
    input.push(`iifname ${q(p.iface)} icmpv6 type nd-neighbor-solicit @th,64,128 ${target} drop`);
    input.push(`iifname ${q(p.iface)} ip6 daddr ${p.vip6} jump ${CLUSTER_IN}`);
  }
  return {
    section: { objects, prerouting: [], output: [], postroutingNat: [] },
    input,
    arpTable: buildArpTable(p),
  };
}

/**
 * Every node answers ARP for the VIP (the kernel does, the VIP being local), and every answer is
 * rewritten to carry the shared multicast MAC, so whichever reply the router keeps is right.
 */
export function buildArpTable(p: ClusterPlan): NftTable | null {
  if (!p.vip4 || !p.mac4) return null;
  const rules = [`arp saddr ip ${p.vip4} arp saddr ether set ${p.mac4}`];
  const base = { type: "filter", hook: "output", priority: "filter", policy: "accept" } as const;
  return { family: "arp", name: TABLE, objects: [chain(CLUSTER_ARP_OUT, rules, base)] };
}

/** Replace the owned buckets atomically, each element expiring by itself (the kernel-side fence). */
export function renderOwnedUpdate(owned: OwnedElements): string {
  return replaceElements(TABLE_REF, { ...OWNED_DECL, elements: ownedElements(owned) });
}

export interface SysctlWant {
  key: string;
  value: string;
  why: string;
}

/** The settings seed 002 asks for, adapted to the multicast-MAC method. */
export function clusterSysctls(c: Config): SysctlWant[] {
  const cl = c.cluster;
  if (!cl) return [];
  const p = planCluster(cl);
  const i = cl.interface;
  const out: SysctlWant[] = [];
  if (p.vip4) {
    out.push(
      {
        key: "net/ipv4/conf/all/send_redirects",
        value: "0",
        why: "no redirects for traffic another node owns",
      },
      { key: `net/ipv4/conf/${i}/send_redirects`, value: "0", why: `no redirects out of ${i}` },
      {
        key: `net/ipv4/conf/${i}/arp_announce`,
        value: "2",
        why: "ARP requests carry the node's own address, never the VIP",
      },
      {
        key: `net/ipv4/conf/${i}/drop_unicast_in_l2_multicast`,
        value: "0",
        why: "accept the VIP's frames sent to the cluster MAC",
      },
    );
  }
  if (p.vip6)
    out.push({
      key: `net/ipv6/conf/${i}/drop_unicast_in_l2_multicast`,
      value: "0",
      why: "accept the VIP's frames sent to the cluster MAC",
    });
  // Forwarding stays as uplinks/services need it; the kernel never forwards a frame that arrived
  // for a multicast MAC anyway (ip_forward drops pkt_type != host).
  if (!c.uplinks && !c.services)
    out.push({ key: "net/ipv4/ip_forward", value: "0", why: "a cluster node routes nothing back" });
  return out;
}
