import type { Explanation, UplinkDetails } from "./explain.ts";
import type { Share } from "./uplinks.ts";

/** `nflb explain` for people: the question, the health used, each decision, and the answer. */
export function formatExplanation(e: Explanation): string {
  const lines = [`${e.query}`, `health: ${e.health}`, ""];
  const trace = e.cluster?.trace ?? e.service?.trace ?? e.uplinks?.trace ?? [];
  trace.forEach((t, i) => lines.push(`  ${i + 1}. ${t}`));
  if (trace.length) lines.push("");
  lines.push(...answer(e).map((l) => `→ ${l}`));
  for (const n of e.notes) lines.push(`  note: ${n}`);
  return lines.join("\n") + "\n";
}

function answer(e: Explanation): string[] {
  if (e.cluster) {
    const c = e.cluster;
    if (c.bucket === null) return ["cluster node: depends on the source port"];
    return [`cluster node: ${c.node ?? "unknown"} (bucket ${c.bucket})`];
  }
  if (e.service) {
    const o = e.service.outcome;
    const s = e.service.service;
    if (o.kind === "backend") return [`service ${s}: backend ${o.backend}`];
    if (o.kind === "drop") return [`service ${s}: dropped (no backend takes new connections)`];
    return [`service ${s}: ${spread(o.shares, o.rotation)}`];
  }
  if (!e.uplinks) return ["not balanced by nflb"];
  const o = e.uplinks.outcome;
  const via = (name: string) => {
    const d = e.uplinkDetails.find((x) => x.name === name);
    return d ? `${name} (${how(d)})` : name;
  };
  switch (o.kind) {
    case "uplink":
      return [`uplink ${via(o.uplink)}`];
    case "spread":
      return [
        `${o.method === "multipath" ? "multipath route: " : ""}${spread(o.shares, o.rotation)}`,
        ...o.shares.map((s) => `  ${via(s.name)}`),
      ];
    case "main":
      return ["the main routing table (not balanced)"];
    case "local":
      return ["delivered to the router itself"];
    case "drop":
      return ["dropped: no uplink is up"];
  }
}

function how(d: UplinkDetails): string {
  const gw = d.gateway ? ` via ${d.gateway}` : "";
  const nat =
    d.nat === "none"
      ? "no NAT"
      : `${d.nat === "snat" ? "SNAT" : "masqueraded"} to ${d.source ?? `${d.interface}'s address`}`;
  return `leaves by ${d.interface}${gw}, ${nat}${d.up ? "" : ", DOWN"}`;
}

const pct = (x: number) => `${(100 * x).toFixed(x * 100 === Math.round(x * 100) ? 0 : 1)}%`;

function spread(shares: Share[], rotation?: string[]): string {
  const parts = shares.map((s) => `${s.name} ${pct(s.share)}`).join(", ");
  if (!rotation) return `one of ${parts} (chance per new connection)`;
  const shown = rotation.slice(0, 12).join(" ");
  return `the next in the rotation ${shown}${rotation.length > 12 ? " …" : ""} (${parts})`;
}
