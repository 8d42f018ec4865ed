// The uplink lab's address plan. Every address comes from documentation, benchmarking
// (198.18.0.0/15) or shared (100.64.0.0/10) space, so nothing here can collide with a real
// destination on the host's network.

export const MAX_UPLINKS = 8;
/** Extra client addresses run from .10 to .250 of the LAN. */
export const MAX_CLIENT_ADDRESSES = 241;
export const MAX_LAN_CLIENTS = 8;

export const LAN = {
  prefix4: "198.18.0.0/24",
  router4: "198.18.0.1",
  prefix6: "2001:db8:1::/64",
  router6: "2001:db8:1::1",
} as const;

/** Well-known destinations owned by the `inet` namespace. */
export const INTERNET = {
  server4: "203.0.113.10",
  server6: "2001:db8:203::10",
  targets4: ["198.18.200.1", "198.18.200.2"],
  targets6: ["2001:db8:200::1", "2001:db8:200::2"],
} as const;

/** Ports the internet namespace answers on (every server and probe-target address). */
export const PORTS = { echo: 5000, http: 80, tcp: 443, dns: 53 } as const;

export const HOST_LINK = { host4: "100.64.255.1", router4: "100.64.255.2", prefixLen: 30 } as const;

export interface UplinkPlan {
  index: number;
  /** Router-side interface. */
  wanIf: string;
  router4: string;
  gateway4: string;
  prefix4: string;
  router6: string;
  gateway6: string;
  prefix6: string;
  /** ISP ↔ internet transit link. */
  ispUp4: string;
  inetSide4: string;
  ispUp6: string;
  inetSide6: string;
}

export function uplinkPlan(index: number): UplinkPlan {
  if (!Number.isInteger(index) || index < 1 || index > MAX_UPLINKS) {
    throw new Error(`uplink index must be 1..${MAX_UPLINKS}, got ${index}`);
  }
  const i = index;
  return {
    index: i,
    wanIf: `wan${i}`,
    router4: `100.64.${i}.2`,
    gateway4: `100.64.${i}.1`,
    prefix4: `100.64.${i}.0/24`,
    router6: `2001:db8:100:${i}::2`,
    gateway6: `2001:db8:100:${i}::1`,
    prefix6: `2001:db8:100:${i}::/64`,
    ispUp4: `198.19.${i}.1`,
    inetSide4: `198.19.${i}.2`,
    ispUp6: `2001:db8:19:${i}::1`,
    inetSide6: `2001:db8:19:${i}::2`,
  };
}

/** Primary addresses of LAN client k (1-based): .2, .3, … and ::2, ::3, … */
export function lanClientAddress(k: number): { v4: string; v6: string } {
  if (!Number.isInteger(k) || k < 1 || k > MAX_LAN_CLIENTS) {
    throw new Error(`LAN client index must be 1..${MAX_LAN_CLIENTS}, got ${k}`);
  }
  return { v4: `198.18.0.${k + 1}`, v6: `2001:db8:1::${(k + 1).toString(16)}` };
}

/** `count` extra source addresses for the first client, from 198.18.0.10 upward. */
export function extraClientAddresses(count: number): string[] {
  if (!Number.isInteger(count) || count < 0 || count > MAX_CLIENT_ADDRESSES) {
    throw new Error(`clientAddresses must be 0..${MAX_CLIENT_ADDRESSES}, got ${count}`);
  }
  return Array.from({ length: count }, (_, n) => `198.18.0.${10 + n}`);
}
