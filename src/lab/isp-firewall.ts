// nftables inside an ISP namespace. Like a real access network, the ISP forwards only packets
// whose source is its own customer prefix, so a probe or connection that leaves the router
// through the wrong uplink dies here (and shows up in `foreign_dropped`) instead of working
// by accident. This table lives only in the lab's ISP namespaces; nflb never sees it.

export const ISP_TABLE = "lab_isp";
/** The ISP's interface toward the router (its customer). */
export const ISP_CUSTOMER_IF = "cust";
/** The ISP's interface toward the internet namespace. */
export const ISP_UPSTREAM_IF = "transit";

export interface IspControl {
  /** Drop everything the ISP would forward (upstream dead, carrier to the customer still up). */
  cut: boolean;
  /** Drop only IPv6 (a broken IPv6 gateway; IPv4 still forwarded). */
  cut6?: boolean;
  /** Fraction 0..1 of customer → internet packets dropped at random. */
  loss: number;
  /** Answer every TCP packet toward the internet with a RST (destinations that refuse; pings pass). */
  refuse?: boolean;
}

export function renderIspTable(customer4: string, customer6: string): string {
  const c = `iifname "${ISP_CUSTOMER_IF}"`;
  return `table inet ${ISP_TABLE} {
  counter forwarded_out {}
  counter forwarded_in {}
  counter echo_out {}
  counter foreign_dropped {}
  counter cut_dropped {}
  counter loss_dropped {}
  set arrived4 { type ipv4_addr . ipv4_addr; flags dynamic; counter; size 65535; }
  set arrived6 { type ipv6_addr . ipv6_addr; flags dynamic; counter; size 65535; }
  chain control {
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    ${c} update @arrived4 { ip saddr . ip daddr }
    ${c} update @arrived6 { ip6 saddr . ip6 daddr }
    ${c} ip saddr != ${customer4} counter name foreign_dropped drop
    ${c} ip6 saddr != ${customer6} counter name foreign_dropped drop
    jump control
    ${c} icmp type echo-request counter name echo_out
    ${c} icmpv6 type echo-request counter name echo_out
    ${c} counter name forwarded_out accept
    oifname "${ISP_CUSTOMER_IF}" counter name forwarded_in accept
  }
}
`;
}

/** Loss resolution: 1/10000. */
const LOSS_SCALE = 10_000;

export function renderIspControl(ctl: IspControl): string {
  if (!(ctl.loss >= 0 && ctl.loss <= 1)) throw new Error(`loss must be within 0..1, got ${ctl.loss}`);
  const lines = [`flush chain inet ${ISP_TABLE} control`];
  if (ctl.cut) lines.push(`add rule inet ${ISP_TABLE} control counter name cut_dropped drop`);
  else if (ctl.cut6)
    lines.push(`add rule inet ${ISP_TABLE} control meta nfproto ipv6 counter name cut_dropped drop`);
  if (ctl.refuse)
    lines.push(
      `add rule inet ${ISP_TABLE} control iifname "${ISP_CUSTOMER_IF}" meta l4proto tcp reject with tcp reset`,
    );
  const threshold = Math.round(ctl.loss * LOSS_SCALE);
  if (threshold > 0) {
    // numgen instead of netem: the lab kernel has no sch_netem.
    lines.push(
      `add rule inet ${ISP_TABLE} control iifname "${ISP_CUSTOMER_IF}" numgen random mod ${LOSS_SCALE} < ${threshold} counter name loss_dropped drop`,
    );
  }
  return lines.join("\n") + "\n";
}

export interface PacketCount {
  packets: number;
  bytes: number;
}

export interface IspFlow {
  source: string;
  destination: string;
  packets: number;
  bytes: number;
}

export interface IspCounters {
  /** Customer → internet, actually forwarded. */
  forwardedOut: PacketCount;
  /** Internet → customer. */
  forwardedIn: PacketCount;
  /** ICMP/ICMPv6 echo requests forwarded toward the internet. */
  echoOut: number;
  /** Packets from outside the customer prefix (left the router through the wrong uplink). */
  foreignDropped: number;
  cutDropped: number;
  lossDropped: number;
  /** Everything the customer handed over for forwarding, before any filtering, by source and destination. */
  arrived: IspFlow[];
}

interface NftJsonItem {
  counter?: { name: string; packets: number; bytes: number };
  set?: {
    name: string;
    elem?: { elem?: { val: { concat?: string[] }; counter?: PacketCount } }[];
  };
}

/** Parse `nft -j list table inet lab_isp`. */
export function parseIspCounters(json: string): IspCounters {
  const items = (JSON.parse(json) as { nftables: NftJsonItem[] }).nftables;
  const counters = new Map<string, PacketCount>();
  const arrived: IspFlow[] = [];
  for (const item of items) {
    if (item.counter) counters.set(item.counter.name, item.counter);
    if (item.set && item.set.name.startsWith("arrived")) {
      for (const e of item.set.elem ?? []) {
        const pair = e.elem?.val.concat;
        if (!pair || pair.length !== 2) continue;
        arrived.push({
          source: pair[0] ?? "",
          destination: pair[1] ?? "",
          packets: e.elem?.counter?.packets ?? 0,
          bytes: e.elem?.counter?.bytes ?? 0,
        });
      }
    }
  }
  const get = (name: string): PacketCount => {
    const c = counters.get(name);
    if (!c) throw new Error(`counter ${name} missing from ${ISP_TABLE}`);
    return { packets: c.packets, bytes: c.bytes };
  };
  return {
    forwardedOut: get("forwarded_out"),
    forwardedIn: get("forwarded_in"),
    echoOut: get("echo_out").packets,
    foreignDropped: get("foreign_dropped").packets,
    cutDropped: get("cut_dropped").packets,
    lossDropped: get("loss_dropped").packets,
    arrived,
  };
}
