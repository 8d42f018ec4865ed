import type { PlannedService, ServicesPlan } from "../plan/services.ts";
import { hex } from "../nft/text.ts";
import { nftJhash } from "./jhash.ts";
import { addrBytes, type Query } from "./packet.ts";
import { countShares, type Share } from "./uplinks.ts";

/**
 * Which backend a new connection to a service's VIP:port gets: the service's slot table indexed
 * the way src/plan/nft-services.ts makes the kernel index it. Pure.
 */
export type BackendOutcome =
  | { kind: "backend"; backend: string }
  | { kind: "spread"; method: "random" | "round-robin" | "least-conn"; shares: Share[]; rotation?: string[] }
  | { kind: "drop" };

export interface ServiceAnswer {
  service: string;
  outcome: BackendOutcome;
  trace: string[];
}

/** The service this query's destination, protocol and port name, if any. */
export function findService(p: ServicesPlan | null, q: Query): PlannedService | null {
  return (
    p?.services.find(
      (s) =>
        s.vip.family === q.dst.family &&
        s.vip.text === q.dst.text &&
        s.protocol === q.proto &&
        s.port === q.port,
    ) ?? null
  );
}

/** Services listening on the destination address (whatever the port), to hint at PROTO PORT. */
export function servicesOn(p: ServicesPlan | null, q: Query): PlannedService[] {
  return p?.services.filter((s) => s.vip.family === q.dst.family && s.vip.text === q.dst.text) ?? [];
}

export function explainService(s: PlannedService, q: Query): ServiceAnswer {
  const trace: string[] = [];
  trace.push(
    `service ${s.name}: ${q.dst.text} ${s.protocol}/${s.port} is its listen address; new connections are DNATed`,
  );
  const states = s.backends.map(
    (b) => `${b.key} ${b.state}${b.state === "up" ? ` (weight ${b.weight})` : ""}`,
  );
  trace.push(`backends: ${states.join(", ")}`);
  const n = s.slots.length;
  if (n === 0) {
    trace.push("no backend may take new connections: they are dropped");
    return { service: s.name, outcome: { kind: "drop" }, trace };
  }
  const shares = countShares(s.slots);
  switch (s.scheduler) {
    case "random":
      trace.push(
        `scheduler random: numgen random mod ${n} picks each backend with its share of the ${n} slots`,
      );
      return { service: s.name, outcome: { kind: "spread", method: "random", shares }, trace };
    case "round-robin":
      trace.push(
        `scheduler round-robin: numgen inc mod ${n} walks the weighted rotation; the connection gets the next backend`,
      );
      return {
        service: s.name,
        outcome: { kind: "spread", method: "round-robin", shares, rotation: s.slots },
        trace,
      };
    case "least-conn":
      trace.push(
        `scheduler least-conn: the next ${n} connections are placed ahead from the connection counts; the kernel walks that sequence`,
      );
      return {
        service: s.name,
        outcome: { kind: "spread", method: "least-conn", shares, rotation: s.slots },
        trace,
      };
    case "source-hash":
    case "maglev": {
      const ip = s.family === 4 ? "ip" : "ip6";
      const slot = nftJhash(addrBytes(q.src), n, s.hashSeed);
      const backend = s.slots[slot] ?? "";
      trace.push(
        `scheduler ${s.scheduler}: jhash ${ip} saddr mod ${n} seed ${hex(s.hashSeed)} = ${slot}; slot ${slot} is ${backend}`,
      );
      return { service: s.name, outcome: { kind: "backend", backend }, trace };
    }
  }
}
