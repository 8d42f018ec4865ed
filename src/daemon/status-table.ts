import type { BackendStatus, CheckStatus, ServiceStatus, StatusJson } from "./status.ts";

const COLOURS = { up: "32", down: "31", disabled: "33", draining: "33", maint: "33", warn: "31" } as const;

/** "8.1M/0.4M of 10M/10M spilling", "-" while not measured; "metered" marks a metered uplink. */
function loadText(u: StatusJson["uplinks"][number]): string {
  const m = (x: number | null | undefined) =>
    x === null || x === undefined ? "-" : `${Number((x / 1e6).toFixed(1))}M`;
  const parts = [u.load ? `${m(u.load.down)}/${m(u.load.up)}` : "-"];
  if (u.capacity) parts.push(`of ${m(u.capacity.down)}/${m(u.capacity.up)}`);
  if (u.overflow) parts.push(u.overflow);
  if (u.metered) parts.push("metered");
  return parts.join(" ");
}

/** `nflb status` for people: aligned columns, colour only when asked (a TTY). */
export function formatStatus(s: StatusJson, colour: boolean): string {
  const paint = (text: string, key: keyof typeof COLOURS) =>
    colour ? `\x1b[${COLOURS[key]}m${text}\x1b[0m` : text;
  const out: string[] = [];
  if (s.uplinks.length) {
    const loads = s.uplinks.some((u) => u.load);
    const rows = s.uplinks.map((u) => [
      u.name,
      u.interface,
      u.state,
      String(u.weight),
      pct(u.share),
      u.rtt_ms === null
        ? "-"
        : `${u.rtt_ms.toFixed(1)} ms${u.jitter_ms === null ? "" : ` ±${u.jitter_ms.toFixed(1)}`}`,
      pct(u.loss),
      u.connections === null ? "-" : String(u.connections),
      ...(loads ? [loadText(u)] : []),
      u.reason,
    ]);
    out.push(
      ...table(
        [
          ...["UPLINK", "IFACE", "STATE", "WEIGHT", "SHARE", "RTT", "LOSS", "CONNS"],
          ...(loads ? ["LOAD DOWN/UP"] : []),
          "REASON",
        ],
        rows,
        (r, i, t) => (i === 2 ? paint(t, r[2] as keyof typeof COLOURS) : t),
      ),
    );
    if (s.keeping_last_data_plane) out.push(paint("all uplinks down: keeping the last data plane", "warn"));
    for (const u of s.uplinks)
      if (u.probe_error) out.push(paint(`${u.name}: prober failing, state held: ${u.probe_error}`, "warn"));
  }
  for (const svc of s.services) {
    if (out.length) out.push("");
    const backups = svc.backends.some((b) => b.backup === true);
    const rows = svc.backends.map((b) => [
      b.address,
      b.state,
      String(b.weight),
      b.connections === null ? "-" : String(b.connections),
      b.connections_total === null || b.connections_total === undefined ? "-" : String(b.connections_total),
      b.bytes_to_backend === null
        ? "-"
        : `${bytesText(b.bytes_to_backend)}/${bytesText(b.bytes_from_backend ?? 0)}`,
      ...(backups ? [roleText(b)] : []),
      b.reason,
    ]);
    out.push(`service ${svc.name} (${svc.protocol} ${svc.listen})${serviceText(svc)}`);
    if (svc.check) out.push(`  check: ${checkText(svc.check)}`);
    out.push(
      ...table(
        [
          "BACKEND",
          "STATE",
          "WEIGHT",
          "CONNS",
          "TOTAL",
          "BYTES TO/FROM",
          ...(backups ? ["ROLE"] : []),
          "REASON",
        ],
        rows,
        (r, i, t) => (i === 1 ? paint(t, r[1] as keyof typeof COLOURS) : t),
      ),
    );
    if (svc.on_backups) out.push(paint("no regular backend is up: the backups take new connections", "warn"));
  }
  if (s.cluster) {
    if (out.length) out.push("");
    out.push(
      `cluster node ${s.cluster.node}: ${s.cluster.buckets_owned} buckets owned, ${s.cluster.members.length} members`,
    );
  }
  if (s.dns) {
    if (out.length) out.push("");
    const d = s.dns;
    const state = d.running ? "" : paint(` NOT LISTENING: ${d.error ?? "stopped"}`, "warn");
    out.push(`dns forwarder ${d.listen.join(", ")} → ${d.upstream.join(", ")}${state}`);
    const rows = d.rules.map((r) => [
      r.rule,
      String(r.entries4),
      String(r.entries6),
      r.domains.length > 3
        ? `${r.domains.slice(0, 3).join(", ")} … (${r.domains.length})`
        : r.domains.join(", "),
    ]);
    if (rows.length) out.push(...table(["RULE", "IPV4", "IPV6", "DOMAINS"], rows, (_r, _i, t) => t));
  }
  if (out.length) out.push("");
  out.push(`config ${s.config_version} (${s.config_file}), applied ${s.applied_at ?? "never"}`);
  if (s.last_reload_error) out.push(paint(`last reload refused: ${s.last_reload_error}`, "warn"));
  if (s.last_apply_error)
    out.push(
      paint(
        `last change to the kernel failed (old data plane serving, retrying): ${s.last_apply_error}`,
        "warn",
      ),
    );
  return out.join("\n") + "\n";
}

/** `round-robin, persistence 5m`: how the service balances, after its address. */
function serviceText(svc: ServiceStatus): string {
  const parts = [svc.scheduler, svc.persistence ? `persistence ${svc.persistence}` : undefined].filter(
    (x): x is string => x !== undefined,
  );
  return parts.length ? ` ${parts.join(", ")}` : "";
}

/** `https GET /health every 1s, timeout 500ms, rise 2 fall 3, sni www.example.com, body "ok"`. */
export function checkText(c: CheckStatus): string {
  if (c.method === "none") return "none (every backend counts as up)";
  const ms = (n: number) => (n % 1000 === 0 ? `${n / 1000}s` : `${n}ms`);
  const what =
    c.method === "tcp"
      ? `tcp connect${c.port !== null ? ` to port ${c.port}` : ""}`
      : `${c.method} GET ${c.path ?? "/"}${c.port !== null ? ` on port ${c.port}` : ""}`;
  const extra = [
    c.sni ? `sni ${c.sni}` : undefined,
    c.host ? `host ${c.host}` : undefined,
    c.expect_status ? `status ${c.expect_status}` : undefined,
    c.expect_body ? `body ${JSON.stringify(c.expect_body)}` : undefined,
  ].filter((x): x is string => x !== undefined);
  return [
    `${what} every ${ms(c.interval_ms)}, timeout ${ms(c.timeout_ms)}, rise ${c.rise} fall ${c.fall}`,
    ...extra,
  ].join(", ");
}

function roleText(b: BackendStatus): string {
  if (b.backup !== true) return "regular";
  return b.serving ? "backup (serving)" : "backup (standby)";
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** Left-aligned columns; `style` colours a cell after padding so escapes do not skew widths. */
function table(
  head: string[],
  rows: string[][],
  style: (row: string[], col: number, text: string) => string,
): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[], styled: boolean) =>
    r
      .map((c, i) => {
        const padded = i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0);
        return styled ? style(r, i, padded) : padded;
      })
      .join("  ")
      .trimEnd();
  return [line(head, false), ...rows.map((r) => line(r, true))];
}

/** 1536 → "1.5K": short enough for a table column. */
function bytesText(n: number): string {
  const units = ["", "K", "M", "G", "T"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? String(v) : `${v.toFixed(1)}${units[i]}`;
}
