import { z } from "zod";
import { parseDuration } from "./duration.ts";
import { isInterfaceName, parseAddr, parseHostPort, parsePrefix } from "../net/ip.ts";

// The validation schema is the single source of the config's shape: defaults, types and the
// JSON Schema for editors all come from here.

const duration = z
  .string()
  .refine((s) => parseDuration(s) !== null, { message: "expected a duration like 500ms, 2s, 30m" })
  .meta({
    pattern: "^\\s*\\d+(\\.\\d+)?(ms|s|m|h)\\s*$",
    description: "a duration: 500ms, 2s, 1.5s, 30m, 1h",
  })
  .transform((s) => parseDuration(s) as number);

const name = z
  .string()
  .regex(
    /^[a-z][a-z0-9_-]{0,30}$/,
    "names are lower-case letters, digits, _ and -, starting with a letter (≤ 31)",
  );

const iface = z
  .string()
  .refine(isInterfaceName, { message: "not a valid interface name (1-15 of A-Z a-z 0-9 _ . @ -)" })
  .meta({ pattern: "^[A-Za-z0-9][A-Za-z0-9_.@-]{0,14}$", description: "a network interface name" });

const address = z
  .string()
  .refine((s) => parseAddr(s) !== null, { message: "not an IPv4 or IPv6 address" })
  .meta({ description: "an IPv4 or IPv6 address" });

const prefix = z
  .string()
  .superRefine((s, ctx) => {
    const p = parsePrefix(s);
    if ("error" in p) ctx.addIssue({ code: "custom", message: p.error });
  })
  .meta({ description: "an address or prefix: 203.0.113.0/24, 2001:db8::/32, 198.51.100.7" });

const hostPort = z
  .string()
  .superRefine((s, ctx) => {
    const p = parseHostPort(s);
    if ("error" in p) ctx.addIssue({ code: "custom", message: p.error });
  })
  .meta({ description: "ADDRESS:PORT, or [IPv6]:PORT" });

const oneOrMany = <T extends z.ZodType>(t: T) =>
  z.union([t, z.array(t)]).transform((v) => (Array.isArray(v) ? v : [v]));

const port = z.number().int().min(1).max(65535);
const portSpec = z.union([
  port,
  z.array(port).min(1),
  z
    .string()
    .regex(/^\d{1,5}-\d{1,5}$/, "expected a port, a list of ports, or a range like 1000-2000")
    .refine(
      (s) => {
        const [a, b] = s.split("-").map(Number);
        return a !== undefined && b !== undefined && a >= 1 && b <= 65535 && a <= b;
      },
      { message: "port range must be within 1..65535 and ascending" },
    ),
]);

const mark = z.number().int().min(0).max(0xffffffff);

export const probeSchema = z.strictObject({
  method: z.enum(["icmp", "tcp", "http", "dns"]).default("icmp"),
  targets: z.array(address).default([]),
  port: port.optional(),
  path: z.string().startsWith("/").default("/"),
  size: z.number().int().min(0).max(65000).default(56),
  interval: duration.default(200),
  timeout: duration.default(500),
  down_after: z.number().int().min(1).max(1000).default(3),
  up_after: z.number().int().min(1).max(1000).default(10),
  min_targets: z.number().int().min(1).default(1),
  max_rtt: duration.nullable().default(null),
  max_loss: z.number().min(0).max(1).nullable().default(null),
});

export const uplinkSchema = z.strictObject({
  interface: iface,
  gateway: oneOrMany(address).optional(),
  weight: z.number().int().min(0).max(10_000).default(1),
  nat: z.enum(["masquerade", "none", "snat"]).default("masquerade"),
  probe: probeSchema.default(() => probeSchema.parse({})),
});

export const balanceSchema = z.strictObject({
  from: z.array(iface).optional(),
  sources: z.array(prefix).optional(),
  method: z.enum(["random", "round-robin", "source-hash", "source-dest-hash"]).default("random"),
  weights: z.enum(["static", "auto"]).default("static"),
  local: z.enum(["primary", "balance"]).default("primary"),
  primary: z.array(name).optional(),
  flush_on_down: z.boolean().default(true),
});

export const ruleSchema = z.strictObject({
  name,
  destination: z.array(prefix).optional(),
  source: z.array(prefix).optional(),
  protocol: z.enum(["tcp", "udp", "icmp"]).optional(),
  port: portSpec.optional(),
  via: z.union([z.literal("main"), z.array(name).min(1)]).optional(),
  sticky: duration.optional(),
});

export const checkSchema = z.strictObject({
  method: z.enum(["tcp", "http", "none"]).default("tcp"),
  interval: duration.default(1000),
  timeout: duration.default(500),
  rise: z.number().int().min(1).default(2),
  fall: z.number().int().min(1).default(3),
  path: z.string().startsWith("/").default("/"),
  expect_status: z.number().int().min(100).max(599).optional(),
  port: port.optional(),
});

export const backendSchema = z.strictObject({
  address: hostPort,
  weight: z.number().int().min(0).max(10_000).default(1),
});

export const serviceSchema = z.strictObject({
  listen: hostPort,
  protocol: z.enum(["tcp", "udp"]).default("tcp"),
  scheduler: z.enum(["round-robin", "random", "source-hash", "maglev", "least-conn"]).default("round-robin"),
  snat: z.boolean().default(false),
  check: checkSchema.default(() => checkSchema.parse({})),
  backends: z.array(backendSchema).min(1),
});

export const clusterSchema = z.strictObject({
  name,
  node: name.optional(),
  vip: oneOrMany(address),
  interface: iface,
  buckets: z.number().int().min(1).max(4096).default(256),
  hash: z.enum(["source", "source-port"]).default("source"),
  etcd: z.array(z.string().url()).min(1).default(["http://127.0.0.1:2379"]),
  lease: duration.default(2000),
});

export const apiSchema = z.strictObject({
  listen: hostPort.default("127.0.0.1:9110"),
  token: z.string().min(8).nullable().default(null),
  /** Host names (NAME or NAME:PORT) browsers may reach the API by, besides its IP addresses and localhost. */
  hosts: z
    .array(z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, "a host name, or NAME:PORT"))
    .max(32)
    .default([]),
});

export const configSchema = z.strictObject({
  version: z.literal(1),
  mark_mask: mark.default(0xff00),
  table_base: z.number().int().min(1).max(0xfffff000).default(200),
  rule_priority_base: z.number().int().min(1).max(31_000).default(10_000),
  uplinks: z.record(name, uplinkSchema).optional(),
  balance: balanceSchema.default(() => balanceSchema.parse({})),
  rules: z.array(ruleSchema).default([]),
  services: z.record(name, serviceSchema).optional(),
  cluster: clusterSchema.optional(),
  api: apiSchema.default(() => apiSchema.parse({})),
  /** Extension: a command run on every uplink/backend state change (argv; the state is in its environment). */
  on_change: z.array(z.string().min(1)).min(1).optional(),
});

export type Config = z.output<typeof configSchema>;
export type UplinkConfig = z.output<typeof uplinkSchema>;
export type ProbeConfig = z.output<typeof probeSchema>;
export type RuleConfig = z.output<typeof ruleSchema>;
export type ServiceConfig = z.output<typeof serviceSchema>;
export type BackendConfig = z.output<typeof backendSchema>;
export type ClusterConfig = z.output<typeof clusterSchema>;
