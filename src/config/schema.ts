import * as z from "zod";
import { formatDuration, MAX_TIMER_MS, parseDuration } from "./duration.ts";
import { describeInput } from "./messages.ts";
import { isInterfaceName, parseAddr, parseHostPort, splitPrefixes } from "../net/ip.ts";
import { domainProblem } from "./domain.ts";
import { parseBitrate } from "./bitrate.ts";
import { LIMITS, PASSIVE_DEFAULTS, passiveOf, UPLINK_PASSIVE_DEFAULTS, uplinkPassiveOf } from "./limits.ts";

// Planning and the cross-checks import these from limits.ts, which loads no zod.
export { LIMITS, passiveOf, uplinkPassiveOf };

// The validation schema is the single source of the config's shape: defaults, types and the
// JSON Schema for editors all come from here.

/**
 * A duration with the bounds that make sense for its key; every bound is within what Node's
 * timers take (2^31-1 ms), so a value can never overflow into a 1 ms busy loop.
 */
const duration = (min: number, max: number) => {
  if (min < 1 || max > MAX_TIMER_MS || min > max) throw new Error(`duration bounds ${min}..${max}`);
  const range = `${formatDuration(min)} to ${formatDuration(max)}`;
  return z
    .string({ error: (iss) => durationTypeError(iss.input, min, max) })
    .superRefine((s, ctx) => {
      const ms = parseDuration(s);
      if (ms === null) ctx.addIssue({ code: "custom", message: malformedDuration(s, min, max) });
      else if (ms < min || ms > max)
        ctx.addIssue({ code: "custom", message: `${s} is out of range: use ${range}` });
    })
    .meta({
      pattern: "^\\s*\\d+(\\.\\d+)?(ms|s|m|h|d)\\s*$",
      description: `a duration from ${range}: 500ms, 2s, 1.5s, 30m, 1h, 1d`,
    })
    .transform((s) => parseDuration(s) as number);
};

/** A bare number is nearly always milliseconds (interval: 200) or seconds (lease: 2): the one that fits. */
function withUnit(n: string, min: number, max: number): string {
  const v = Number(n);
  return v >= min && v <= max ? `${n}ms` : v * 1000 >= min && v * 1000 <= max ? `${n}s` : `${n}ms`;
}

function durationTypeError(input: unknown, min: number, max: number): string {
  if (typeof input === "number") {
    const range = `${formatDuration(min)} to ${formatDuration(max)}`;
    const v = input;
    // Only suggest a unit that makes the value valid; otherwise say where it must lie.
    if ((v >= min && v <= max) || (v * 1000 >= min && v * 1000 <= max))
      return `add a unit: ${withUnit(String(v), min, max)}`;
    return `add a unit, and keep within ${range}: like ${formatDuration(Math.max(min, Math.min(max, 1000)))}`;
  }
  return `expected a duration like 500ms, 2s, 30m (got ${describeInput(input)})`;
}

const SPELLED: [RegExp, string][] = [
  [/^(milliseconds?|msecs?)$/, "ms"],
  [/^(seconds?|secs?|sec)$/, "s"],
  [/^(minutes?|mins?)$/, "m"],
  [/^(hours?|hrs?)$/, "h"],
  [/^days?$/, "d"],
];

function malformedDuration(s: string, min: number, max: number): string {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(s);
  const [, n, word = ""] = m ?? [];
  const unit = SPELLED.find(([re]) => re.test(word.toLowerCase()))?.[1];
  if (n && unit) return `write ${n}${unit}, not ${s}`;
  if (n && !word) return `add a unit: ${withUnit(n, min, max)}`;
  return `expected a duration like 500ms, 2s, 30m, 1h (got ${describeInput(s)})`;
}

const NAME = /^[a-z][a-z0-9_-]{0,30}$/;

/** Names that are also properties of every JavaScript object: a lookup by name would find those. */
const RESERVED_NAMES = new Set(Object.getOwnPropertyNames(Object.prototype));

const name = z
  .string()
  .regex(NAME, {
    error: (iss) => {
      const got = typeof iss.input === "string" ? iss.input : "";
      const fixed = got
        .toLowerCase()
        .replace(/[^a-z0-9_-]/g, "-")
        .slice(0, 31);
      const hint = NAME.test(fixed) && fixed !== got ? `: write ${fixed}` : "";
      return `names are lower-case letters, digits, _ and -, starting with a letter, at most 31 (got ${describeInput(iss.input)})${hint}`;
    },
  })
  .refine((s) => !RESERVED_NAMES.has(s), {
    error: (iss) => `${String(iss.input)} is reserved: choose another name`,
  })
  .meta({ description: "a name: lower-case letters, digits, _ and -, starting with a letter" });

const iface = z
  .string()
  .refine(isInterfaceName, {
    error: (iss) =>
      `not a valid interface name (1 to 15 of A-Z a-z 0-9 _ . @ -, like eth1 or wg0; got ${describeInput(iss.input)})`,
  })
  .meta({ pattern: "^[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}$", description: "a network interface name" });

const address = z
  .string()
  .refine((s) => parseAddr(s) !== null, {
    error: (iss) =>
      `not an IPv4 or IPv6 address (got ${describeInput(iss.input)}); write it like 192.0.2.1 or 2001:db8::1`,
  })
  .meta({ description: "an IPv4 or IPv6 address" });

const hostPort = z
  .string()
  .superRefine((s, ctx) => {
    const p = parseHostPort(s);
    if (!("error" in p)) return;
    // The usual slip: the address without its port.
    const bare = parseAddr(s.replace(/^\[(.*)\]$/, "$1"));
    const message = bare
      ? `${s} has no port: write ${bare.family === 6 ? `[${bare.text}]` : bare.text}:PORT, like ${bare.family === 6 ? `[${bare.text}]` : bare.text}:80`
      : `${p.error}: write it like 192.0.2.10:80 or [2001:db8::10]:80`;
    ctx.addIssue({ code: "custom", message });
  })
  .meta({ description: "ADDRESS:PORT, or [IPv6]:PORT" });

/** A DNS name in lower case, IDNs as punycode; `*.` in front matches every name below it. */
const domain = z
  .string()
  .superRefine((s, ctx) => {
    const problem = domainProblem(s);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .meta({
    pattern: "^(\\*\\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$",
    description:
      "a domain name in lower case (IDNs as xn--…): example.com, or *.example.net for the names below it",
  });

/** An upstream resolver: ADDRESS (port 53) or ADDRESS:PORT / [IPv6]:PORT. */
const upstream = z
  .string()
  .refine((s) => parseAddr(s) !== null || !("error" in parseHostPort(s)), {
    error: (iss) =>
      `expected a resolver address, like 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53 (got ${describeInput(iss.input)})`,
  })
  .meta({ description: "ADDRESS, ADDRESS:PORT or [IPv6]:PORT (port 53 when omitted)" });

const oneOrMany = <T extends z.ZodType>(t: T, max: number, example: string) =>
  z
    .union([t, z.array(t).max(max)], {
      error: (iss) =>
        `expected one address or a list of them, like ${example} (got ${describeInput(iss.input)})`,
    })
    .transform((v) => (Array.isArray(v) ? v : [v]));

/**
 * A list of addresses or prefixes, checked in one loop over the list: a rule may hold 10,000 of
 * them, and a refinement per item costs zod ~10 µs each in a fresh process.
 */
const prefixes = z
  .array(
    z.string().meta({ description: "an address or prefix: 203.0.113.0/24, 2001:db8::/32, 198.51.100.7" }),
  )
  .max(LIMITS.prefixes)
  .check((ctx) => {
    // Not on a list with items of another type (zod has reported those, and skips this then).
    for (const e of splitPrefixes(ctx.value).errors)
      ctx.issues.push({ code: "custom", message: e.error, input: ctx.value[e.index], path: [e.index] });
  });

const port = z.number().int().min(1).max(65535);
const portSpec = z.union(
  [
    port,
    z.array(port).min(1).max(LIMITS.ports),
    z
      .string()
      .regex(/^\d{1,5}-\d{1,5}$/, {
        message: "expected a port, a list of ports, or a range like 1000-2000",
        abort: true,
      })
      .refine(
        (s) => {
          const [a, b] = s.split("-").map(Number);
          return a !== undefined && b !== undefined && a >= 1 && b <= 65535 && a <= b;
        },
        { message: "port range must be within 1..65535 and ascending, like 1000-2000" },
      ),
  ],
  {
    error: (iss) =>
      `expected a port (25), a list of ports ([80, 443]) or a range ('1000-2000'); got ${describeInput(iss.input)}`,
  },
);

const mark = z.number().int().min(0).max(0xffffffff);

export const probeSchema = z.strictObject({
  method: z.enum(["icmp", "tcp", "http", "dns"]).default("icmp"),
  targets: z.array(address).max(LIMITS.targets).default([]),
  port: port.optional(),
  path: z.string().startsWith("/").max(1024).default("/"),
  size: z.number().int().min(0).max(65000).default(56),
  interval: duration(10, 60_000).default(200),
  timeout: duration(10, 60_000).default(500),
  down_after: z.number().int().min(1).max(1000).default(3),
  up_after: z.number().int().min(1).max(1000).default(10),
  min_targets: z.number().int().min(1).max(LIMITS.targets).default(1),
  max_rtt: duration(1, 60_000).nullable().default(null),
  max_loss: z.number().min(0).max(1).nullable().default(null),
  /** Low marks (pfSense's alarms): a link that went down comes back only below these (default: the max_ ones). */
  recover_rtt: duration(1, 60_000).nullable().default(null),
  recover_loss: z.number().min(0).max(1).nullable().default(null),
  /** Smoothed jitter (variation of consecutive rounds' RTTs) above this takes the link down. */
  max_jitter: duration(1, 60_000).nullable().default(null),
  recover_jitter: duration(1, 60_000).nullable().default(null),
});

const RATE_PATTERN = "^\\s*\\d+(\\.\\d+)?\\s*[kKmMgGtT]?(bit|bits|b)?(/s)?\\s*$";

/** A rate in bit/s, as written: a number, or text with a k/M/G/T prefix (10Mbit, 5M, 512k). */
const rateText = z
  .union([z.number().meta({ minimum: 1000 }), z.string().meta({ pattern: RATE_PATTERN })], {
    error: (iss) => `expected a rate like 10Mbit, 5M or 512k (got ${describeInput(iss.input)})`,
  })
  .meta({ description: "bit/s: a number, or with a k/M/G/T prefix like 10Mbit, 5M, 512k" });

/**
 * What the link carries, in bit/s per direction; one rate means both. Overflow fills an uplink
 * up to a share of it; status shows the measured load against it. The rates are checked after
 * the shape, so that a bad one is reported as itself, not as "neither a rate nor an object".
 */
const capacity = z
  .union(
    [
      rateText,
      z
        .strictObject({ down: rateText.optional(), up: rateText.optional() })
        .refine((c) => c.down !== undefined || c.up !== undefined, {
          message: "give down, up or both, like capacity: { down: 100M, up: 20M }",
        }),
    ],
    {
      error: (iss) =>
        `expected a rate or { down, up }, like capacity: { down: 100M, up: 20M } (got ${describeInput(iss.input)})`,
    },
  )
  .superRefine((c, ctx) => {
    const each: [string | number | undefined, (string | number)[]][] =
      typeof c === "object"
        ? [
            [c.down, ["down"]],
            [c.up, ["up"]],
          ]
        : [[c, []]];
    for (const [v, path] of each) {
      const r = v === undefined ? 0 : parseBitrate(v);
      if (typeof r !== "number") ctx.addIssue({ code: "custom", path, message: r.error });
    }
  })
  .transform((c): { down?: number; up?: number } => {
    const rate = (v: string | number | undefined) =>
      v === undefined ? undefined : (parseBitrate(v) as number);
    if (typeof c !== "object") return { down: rate(c), up: rate(c) };
    const out: { down?: number; up?: number } = {};
    if (c.down !== undefined) out.down = rate(c.down);
    if (c.up !== undefined) out.up = rate(c.up);
    return out;
  });
/**
 * Passive health of an uplink: new connections through it that get no answer while the other
 * uplinks' connections do make it suspect at once; a fast re-probe through it confirms (down) or
 * clears. `true` (the default) means these settings, `false` turns it off.
 */
export const uplinkPassiveSchema = z.strictObject({
  /** New connections in a row, none answered, that make the uplink suspect. */
  suspect_after: z.number().int().min(2).max(1000).default(UPLINK_PASSIVE_DEFAULTS.suspect_after),
  /** The first of them has waited at least this long (longer when the link's answers take longer). */
  min_silence: duration(10, 10_000).default(UPLINK_PASSIVE_DEFAULTS.min_silence),
  /** A connection unanswered this long counts as unanswered in status and metrics. */
  timeout: duration(100, 60_000).default(UPLINK_PASSIVE_DEFAULTS.timeout),
  /** Re-probe rounds (10 ms apart; each lost unless answered within the probe's overdue time) that must all fail. */
  confirm_rounds: z.number().int().min(1).max(10).default(UPLINK_PASSIVE_DEFAULTS.confirm_rounds),
});

export type UplinkPassiveConfig = z.output<typeof uplinkPassiveSchema>;

const uplinkPassive = z
  .union([z.boolean(), uplinkPassiveSchema], {
    error: (iss) =>
      `expected true, false or { suspect_after, min_silence, timeout, confirm_rounds }, like passive: false (got ${describeInput(iss.input)})`,
  })
  .default(true);

export const uplinkSchema = z.strictObject({
  interface: iface,
  gateway: z
    .union([z.literal("auto"), oneOrMany(address, 2, "[100.64.1.1, 2001:db8:1::1]")], {
      error: (iss) =>
        `write auto, one address or a list of them, like 100.64.1.1 or [100.64.1.1, 2001:db8:1::1] (got ${describeInput(iss.input)})`,
    })
    .optional(),
  weight: z.number().int().min(0).max(10_000).default(1),
  nat: z.enum(["masquerade", "none", "snat"]).default("masquerade"),
  probe: probeSchema.default(() => probeSchema.parse({})),
  passive: uplinkPassive,
  /** Pins the uplink's slot (mark, table, rule priority); unset: kept from the state file, or the lowest free. */
  id: z.number().int().min(1).max(490).optional(),
  capacity: capacity.optional(),
  /** Carries only rules that name it, and the balance only while every unmetered uplink is down. */
  metered: z.boolean().default(false),
  /** `method: overflow` fills lower priorities first (default: the YAML order); equal ones share by weight. */
  priority: z.number().int().min(0).max(10_000).optional(),
});

/**
 * `method: overflow` (Peplink's overflow): new connections go to the first uplink, by priority,
 * whose measured load is below `threshold` of its capacity; it spills above it and takes new
 * connections again only below `recover` (hysteresis), so a link near its limit does not flap.
 */
export const overflowSchema = z
  .strictObject({
    threshold: z.number().min(0.05).max(1).default(0.8),
    recover: z.number().min(0).max(1).default(0.7),
    /** How often the interfaces' byte counters are read. */
    interval: duration(100, 10_000).default(500),
    /** Time constant of the load's moving average: longer ignores shorter bursts. */
    smoothing: duration(100, 60_000).default(1000),
  })
  .refine((o) => o.recover < o.threshold, {
    path: ["recover"],
    message: "recover must be below threshold (the gap keeps an uplink near its limit from flapping)",
  });

export const balanceSchema = z.strictObject({
  from: z.array(iface).max(LIMITS.interfaces).optional(),
  sources: prefixes.optional(),
  method: z.enum(["random", "round-robin", "source-hash", "source-dest-hash", "overflow"]).default("random"),
  weights: z.enum(["static", "auto"]).default("static"),
  overflow: overflowSchema.default(() => overflowSchema.parse({})),
  local: z.enum(["primary", "balance"]).default("primary"),
  primary: z.array(name).max(LIMITS.uplinks).optional(),
  flush_on_down: z.boolean().default(true),
  /**
   * What the balanced connections report to conntrack's event listeners while passive health runs:
   * all (every state change), or minimal (start, first answer, end: less CPU for passive health,
   * hidden from every other listener). See PASSIVE_CT_EVENTS in src/plan/nft-uplinks.ts.
   */
  conntrack_events: z.enum(["all", "minimal"]).default("all"),
  /** Opt-in: it trades the kernel's own local-source check for nflb's (docs/DATAPLANE.md). */
  accept_local: z.boolean().default(false),
});

export const ruleSchema = z.strictObject({
  name,
  destination: prefixes.optional(),
  source: prefixes.optional(),
  protocol: z.enum(["tcp", "udp", "icmp"]).optional(),
  port: portSpec.optional(),
  via: z
    .union([z.literal("main"), z.array(name).min(1).max(LIMITS.uplinks)], {
      error: (iss) =>
        `via is a list of uplinks or main: write via: [${typeof iss.input === "string" ? iss.input : "isp1"}] or via: main (got ${describeInput(iss.input)})`,
    })
    .optional(),
  sticky: duration(1000, 7 * 86_400_000).optional(),
  domains: z.array(domain).min(1).max(LIMITS.domains).optional(),
});

/**
 * Passive health (HAProxy's `observe layer4`): new TCP connections a backend refuses or leaves
 * unanswered take it down before the next active check; `true` means the defaults.
 */
export const passiveSchema = z.strictObject({
  fall: z.number().int().min(1).max(1000).default(PASSIVE_DEFAULTS.fall),
  window: z.number().int().min(1).max(1000).default(PASSIVE_DEFAULTS.window),
  timeout: duration(10, 60_000).default(PASSIVE_DEFAULTS.timeout),
});

const passive = z
  .union([z.boolean(), passiveSchema], {
    error: (iss) =>
      `expected true, false or { fall, window, timeout }, like passive: true (got ${describeInput(iss.input)})`,
  })
  .default(false);

export type PassiveConfig = z.output<typeof passiveSchema>;

/** A DNS name as TLS's SNI carries it (RFC 6066: a host name, never an address). */
const dnsName = z
  .string()
  .max(253)
  .regex(/^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i, {
    message: "a DNS name like www.example.com (SNI carries a name, not an address)",
  });
/** An HTTP Host header: a name or address, with an optional port; nothing that could end the header. */
const hostHeader = z
  .string()
  .max(261)
  .regex(/^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:\d{1,5})?$/i, {
    message: "a host name or address with an optional port, like www.example.com or 10.1.1.1:8080",
  });

export const checkSchema = z
  .strictObject({
    method: z.enum(["tcp", "http", "https", "none"]).default("tcp"),
    interval: duration(10, 3_600_000).default(1000),
    timeout: duration(10, 60_000).default(500),
    rise: z.number().int().min(1).max(1000).default(2),
    fall: z.number().int().min(1).max(1000).default(3),
    path: z
      .string()
      .startsWith("/")
      .max(1024)
      .regex(/^[\x21-\x7e]+$/, { message: "a path without spaces or control characters (escape them: %20)" })
      .default("/"),
    expect_status: z.number().int().min(100).max(599).optional(),
    port: port.optional(),
    /** HTTP(S): the Host header (default: the backend's ADDRESS:PORT). */
    host: hostHeader.optional(),
    /** HTTPS: the name sent in the TLS handshake (default: none, or `host` without its port when it is a name). */
    sni: dnsName.optional(),
    /** HTTP(S): the first 64 KiB of the body must contain this text. */
    expect_body: z.string().min(1).max(1024).optional(),
    /** HTTPS: verify the backend's certificate against this PEM CA (default: not verified). */
    ca: z
      .string()
      .max(1024)
      .refine((p) => p.startsWith("/") && !p.includes("\0") && !p.split("/").includes(".."), {
        message: "an absolute file path, without '..'",
      })
      .optional(),
    passive,
  })
  .superRefine((c, ctx) => {
    const web = c.method === "http" || c.method === "https";
    for (const key of ["host", "expect_body"] as const)
      if (c[key] !== undefined && !web)
        ctx.addIssue({ code: "custom", path: [key], message: `${key} needs method: http or https` });
    for (const key of ["sni", "ca"] as const)
      if (c[key] !== undefined && c.method !== "https")
        ctx.addIssue({ code: "custom", path: [key], message: `${key} needs method: https` });
  });

export const backendSchema = z.strictObject({
  address: hostPort,
  weight: z.number().int().min(0).max(10_000).default(1),
  /** keepalived's sorry server: takes new connections only while no regular backend can. */
  backup: z.boolean().optional(),
});

export const serviceSchema = z.strictObject({
  listen: hostPort,
  protocol: z.enum(["tcp", "udp"]).default("tcp"),
  scheduler: z.enum(["round-robin", "random", "source-hash", "maglev", "least-conn"]).default("round-robin"),
  snat: z.boolean().default(false),
  /**
   * IPVS's persistence_timeout: a client (IPv4 address; IPv6 /64) goes back to the backend it
   * last got for this long after its last new connection, whatever the scheduler.
   */
  persistence: duration(1000, 7 * 86_400_000).optional(),
  check: checkSchema.default(() => checkSchema.parse({})),
  backends: z.array(backendSchema).min(1).max(LIMITS.backends),
});

// --- cluster: its own helpers kept next to it (ease merges with the rest of the schema) ---

/** An absolute path to a file nflb reads (keys, certificates, passwords): never a relative one. */
const clusterFile = z
  .string()
  .max(1024)
  .refine((p) => p.startsWith("/") && !p.includes("\0") && !p.split("/").includes(".."), {
    message: "an absolute file path, without '..'",
  })
  .meta({ description: "an absolute file path" });

/**
 * `http://host:port` or `https://host:port`. Only "is it a URL" here: the scheme, credentials
 * (they belong in `etcd_auth`) and paths are cross-checks, whose messages say how to write it.
 */
const etcdUrl = z
  .string()
  .max(512)
  .refine((s) => URL.canParse(s), { message: "not a URL: expected http://HOST:PORT or https://HOST:PORT" })
  .meta({ description: "an etcd endpoint: http://HOST:PORT or https://HOST:PORT" });

export const clusterSchema = z
  .strictObject({
    name,
    node: name.optional(),
    vip: oneOrMany(address, 2, "[192.0.2.2, 2001:db8::2]"),
    interface: iface,
    buckets: z.number().int().min(1).max(4096).default(256),
    hash: z.enum(["source", "source-port"]).default("source"),
    etcd: z.array(etcdUrl).min(1).max(LIMITS.etcd).default(["http://127.0.0.1:2379"]),
    lease: duration(500, 60_000).default(2000),
    /** TLS to etcd: its CA, and this node's client certificate for `--client-cert-auth`. */
    etcd_tls: z
      .strictObject({ ca: clusterFile.optional(), cert: clusterFile.optional(), key: clusterFile.optional() })
      .refine((t) => (t.cert === undefined) === (t.key === undefined), {
        message: "cert and key go together",
      })
      .optional(),
    /** etcd's own users; the password is read from a file (never written in this YAML). */
    etcd_auth: z
      .strictObject({
        username: z
          .string()
          .min(1)
          .max(128)
          .regex(/^[^\s:]+$/, "no spaces or ':'"),
        password_file: clusterFile,
      })
      .optional(),
    /** Shared secret (HMAC-SHA256) of the witness reports; the file must not be world-readable. */
    key_file: clusterFile.optional(),
    /** Ed25519 public key (PEM) every pushed config must be signed with; none: pushes are refused. */
    push_public_key: clusterFile.optional(),
  })
  .superRefine((c, ctx) => {
    if (c.etcd_tls && !c.etcd.some((e) => e.startsWith("https://")))
      ctx.addIssue({ code: "custom", path: ["etcd_tls"], message: "etcd_tls needs https:// endpoints" });
  });

export const dnsSchema = z.strictObject({
  listen: z.array(hostPort).min(1).max(LIMITS.dnsListen),
  upstream: z.array(upstream).min(1).max(LIMITS.dnsUpstreams),
  /** An upstream that has not answered by then: the query is dropped (the client asks again). */
  timeout: duration(100, 30_000).default(2000),
  min_ttl: duration(1000, 86_400_000).default(30_000),
  max_ttl: duration(1000, 7 * 86_400_000).default(86_400_000),
  /** How long after the last packet of a connection to an address the address stays in its rule. */
  keep: duration(1000, 86_400_000).default(300_000),
  max_entries_per_rule: z.number().int().min(1).max(1_000_000).default(65_536),
  max_entries: z.number().int().min(1).max(4_000_000).default(262_144),
  /** Queries waiting for an upstream answer; more are dropped. */
  max_pending: z.number().int().min(1).max(65_536).default(4096),
  /** TCP clients served at once. */
  max_tcp: z.number().int().min(1).max(4096).default(64),
});

export const apiSchema = z.strictObject({
  listen: hostPort.default("127.0.0.1:9110"),
  token: z.string().min(8).max(256).nullable().default(null),
  /** Host names (NAME or NAME:PORT) browsers may reach the API by, besides its IP addresses and localhost. */
  hosts: z
    .array(z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, "a host name, or NAME:PORT"))
    .max(32)
    .default([]),
});

export const configSchema = z.strictObject({
  version: z.literal(1, {
    error: (iss) =>
      iss.input === undefined
        ? "add version: 1 as the first line (the config format's version)"
        : `version must be 1, the only config format so far (got ${describeInput(iss.input)})`,
  }),
  mark_mask: mark.default(0xff00),
  table_base: z.number().int().min(1).max(0xfffff000).default(200),
  rule_priority_base: z.number().int().min(1).max(31_000).default(10_000),
  uplinks: z.record(name, uplinkSchema).optional(),
  balance: balanceSchema.default(() => balanceSchema.parse({})),
  rules: z.array(ruleSchema).max(LIMITS.rules).default([]),
  services: z.record(name, serviceSchema).optional(),
  cluster: clusterSchema.optional(),
  api: apiSchema.default(() => apiSchema.parse({})),
  /** A DNS forwarder that fills the sets of rules with `domains`. */
  dns: dnsSchema.optional(),
  /** Extension: a command run on every uplink/backend state change (argv; the state is in its environment). */
  on_change: z.array(z.string().min(1).max(4096)).min(1).max(LIMITS.argv).optional(),
});

export type Config = z.output<typeof configSchema>;
export type UplinkConfig = z.output<typeof uplinkSchema>;
export type ProbeConfig = z.output<typeof probeSchema>;
export type RuleConfig = z.output<typeof ruleSchema>;
export type ServiceConfig = z.output<typeof serviceSchema>;
export type BackendConfig = z.output<typeof backendSchema>;
export type DnsConfig = z.output<typeof dnsSchema>;
export type OverflowConfig = z.output<typeof overflowSchema>;
export type ClusterConfig = z.output<typeof clusterSchema>;
