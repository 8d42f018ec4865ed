import { formatDuration } from "../config/duration.ts";
import type { PlannedService, ServicesPlan } from "../plan/services.ts";
import type { Trace } from "../nft/ruleset/trace.ts";
import type { Query } from "./packet.ts";
import { stepLine } from "./trace-packet.ts";
import { sharesOf, type Share } from "./uplinks.ts";

/** Which backend a new connection to a service's VIP:port gets: read off the traced DNAT. Pure. */
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

export function explainService(s: PlannedService, q: Query, outcomes: Trace[]): ServiceAnswer {
  const trace: string[] = [
    `service ${s.name}: ${q.dst.text} ${s.protocol}/${s.port} is its listen address; new connections are DNATed`,
    `backends: ${s.backends.map((b) => `${b.key}${b.backup ? " backup" : ""} ${b.state}${b.state === "up" ? ` (weight ${b.weight})` : ""}`).join(", ")}`,
  ];
  if (s.onBackups && s.backends.some((b) => b.backup))
    trace.push("no regular backend is up: the backups take new connections");
  if (s.persistenceMs !== undefined)
    trace.push(
      `persistence ${formatDuration(s.persistenceMs)}: a client goes back to the backend it got, if that is still up, for this long after its last new connection`,
    );
  const first = outcomes[0];
  trace.push(
    ...(first?.steps ?? []).filter((st) => st.hook === "prerouting" || st.hook === "output").map(stepLine),
  );
  const backendOf = (t: Trace): string | null => {
    const d = t.nat.find((n) => n.kind === "dnat");
    if (!d || d.kind !== "dnat") return null;
    const b = s.backends.find((x) => x.addr.text === d.addr && x.port === (d.port ?? s.port));
    return b?.key ?? `${d.addr}:${d.port ?? s.port}`;
  };
  const picks = outcomes.map((t) => ({ backend: backendOf(t), share: t.share }));
  if (picks.every((p) => p.backend === null)) {
    trace.push("no backend may take new connections: they are dropped");
    return { service: s.name, outcome: { kind: "drop" }, trace };
  }
  const names = [...new Set(picks.map((p) => p.backend ?? "drop"))];
  if (names.length === 1 && !first?.choices.length) {
    return { service: s.name, outcome: { kind: "backend", backend: names[0] ?? "" }, trace };
  }
  const choice = first?.choices[0];
  const shares = sharesOf(picks.map((p) => ({ name: p.backend ?? "drop", share: p.share })));
  if (choice?.expr.startsWith("numgen random")) {
    trace.push(`${choice.expr} picks each backend with its share of the ${choice.of} slots`);
    return { service: s.name, outcome: { kind: "spread", method: "random", shares }, trace };
  }
  const method = s.scheduler === "least-conn" ? "least-conn" : "round-robin";
  trace.push(
    method === "least-conn"
      ? `scheduler least-conn: the next ${choice?.of ?? 0} connections are placed ahead from the connection counts; the kernel walks that sequence (${choice?.expr ?? ""})`
      : `${choice?.expr ?? "numgen inc"} walks the weighted rotation; the connection gets the next backend`,
  );
  return {
    service: s.name,
    outcome: { kind: "spread", method, shares, rotation: picks.map((p) => p.backend ?? "drop") },
    trace,
  };
}
