// Generates docs/CONFIG.md, the config reference: every key with its type, default, bounds, a
// description and an example, from the validation schema (src/config/schema.ts) through the same
// JSON Schema editors get (scripts/gen-schema.ts). `npm run gen:schema` writes both files;
// test/unit/schema.test.ts fails when either is stale.
import { fileURLToPath } from "node:url";
import * as prettier from "prettier";
import * as z from "zod";
import { formatDuration } from "../src/config/duration.ts";
import { LIMITS, configSchema } from "../src/config/schema.ts";
import { unwrap } from "../src/config/suggest.ts";
import { buildSchema, DESCRIPTIONS, type Json } from "./gen-schema.ts";

export const CONFIG_DOC_FILE = fileURLToPath(new URL("../docs/CONFIG.md", import.meta.url));

/** Examples worth more than the default, by key path as in DESCRIPTIONS. */
const EXAMPLES: Record<string, string> = {
  version: "version: 1",
  mark_mask: "mark_mask: 0xff0000",
  table_base: "table_base: 1000",
  rule_priority_base: "rule_priority_base: 20000",
  uplinks: "uplinks:\n  isp1: { interface: wan1, gateway: 100.64.1.1, weight: 3 }",
  "uplinks.*.interface": "interface: wan1",
  "uplinks.*.gateway": "gateway: [100.64.1.1, 2001:db8:1::1]",
  "uplinks.*.weight": "weight: 3",
  "uplinks.*.capacity": "capacity: { down: 100M, up: 20M }",
  "uplinks.*.metered": "metered: true",
  "uplinks.*.priority": "priority: 1",
  "uplinks.*.probe.recover_rtt": "recover_rtt: 150ms",
  "uplinks.*.probe.recover_loss": "recover_loss: 0.05",
  "uplinks.*.probe.max_jitter": "max_jitter: 50ms",
  "uplinks.*.probe.recover_jitter": "recover_jitter: 20ms",
  "balance.overflow": "overflow: { threshold: 0.8, recover: 0.7 }",
  "uplinks.*.nat": "nat: none",
  "uplinks.*.id": "id: 3",
  "uplinks.*.probe": "probe: { targets: [198.18.100.1, 198.18.100.2], interval: 500ms }",
  "uplinks.*.probe.method": "method: tcp",
  "uplinks.*.probe.targets": "targets: [198.18.100.1, 198.18.100.2]",
  "uplinks.*.probe.port": "port: 443",
  "uplinks.*.probe.path": "path: /generate_204",
  "uplinks.*.probe.size": "size: 1200",
  "uplinks.*.probe.interval": "interval: 500ms",
  "uplinks.*.probe.timeout": "timeout: 1s",
  "uplinks.*.probe.down_after": "down_after: 5",
  "uplinks.*.probe.up_after": "up_after: 20",
  "uplinks.*.probe.min_targets": "min_targets: 2",
  "uplinks.*.probe.max_rtt": "max_rtt: 800ms",
  "uplinks.*.probe.max_loss": "max_loss: 0.2",
  balance: "balance: { from: [lan0], method: round-robin }",
  "balance.from": "from: [lan0, lan1]",
  "balance.sources": "sources: [10.0.0.0/8, 2001:db8:100::/56]",
  "balance.method": "method: source-hash",
  "balance.weights": "weights: auto",
  "balance.local": "local: balance",
  "balance.primary": "primary: [isp1, isp2]",
  "balance.flush_on_down": "flush_on_down: false",
  rules: "rules:\n  - { name: smtp, protocol: tcp, port: 25, via: [isp2] }",
  "rules.[].name": "name: bank-needs-one-ip",
  "rules.[].destination": "destination: [66.218.64.0/19, 68.142.192.0/18]",
  "rules.[].source": "source: [10.0.0.0/24]",
  "rules.[].protocol": "protocol: udp",
  "rules.[].port": "port: [80, 443]",
  "rules.[].via": "via: [isp1, isp2]",
  "rules.[].sticky": "sticky: 30m",
  "rules.[].domains": 'domains: [netflix.com, "*.nflxvideo.net"]',
  dns: "dns: { listen: [192.168.1.1:53], upstream: [9.9.9.9, 149.112.112.112] }",
  "dns.listen": "listen: [192.168.1.1:53, '[fd00::1]:53']",
  "dns.upstream": "upstream: [127.0.0.1:5353]",
  "dns.timeout": "timeout: 1s",
  "dns.min_ttl": "min_ttl: 5m",
  "dns.max_ttl": "max_ttl: 1h",
  "dns.keep": "keep: 30m",
  "dns.max_entries_per_rule": "max_entries_per_rule: 10000",
  "dns.max_entries": "max_entries: 100000",
  "dns.max_pending": "max_pending: 1024",
  "dns.max_tcp": "max_tcp: 16",
  services: "services:\n  web: { listen: 203.0.113.10:80, backends: [{ address: 10.1.1.1:80 }] }",
  "services.*.listen": "listen: '[2001:db8::10]:443'",
  "services.*.protocol": "protocol: udp",
  "services.*.scheduler": "scheduler: maglev",
  "services.*.snat": "snat: true",
  "services.*.persistence": "persistence: 5m",
  "services.*.check": "check: { method: http, path: /healthz, interval: 2s }",
  "services.*.check.method": "method: http",
  "services.*.check.interval": "interval: 2s",
  "services.*.check.timeout": "timeout: 1s",
  "services.*.check.rise": "rise: 3",
  "services.*.check.fall": "fall: 2",
  "services.*.check.path": "path: /healthz",
  "services.*.check.expect_status": "expect_status: 204",
  "services.*.check.port": "port: 8081",
  "uplinks.*.passive": "passive: { suspect_after: 4, min_silence: 50ms, timeout: 3s, confirm_rounds: 3 }",
  "services.*.check.passive": "passive: { fall: 5, window: 10, timeout: 1s }",
  "services.*.check.host": "host: www.example.com",
  "services.*.check.sni": "sni: www.example.com",
  "services.*.check.expect_body": 'expect_body: "status: ok"',
  "services.*.check.ca": "ca: /etc/nflb/backend-ca.pem",
  "services.*.backends.[].backup": "backup: true",
  "services.*.backends": "backends:\n  - { address: 10.1.1.1:80 }\n  - { address: 10.1.1.2:80, weight: 2 }",
  "services.*.backends.[].address": "address: 10.1.1.1:80",
  "services.*.backends.[].weight": "weight: 0",
  cluster: "cluster: { name: web, node: node-a, vip: 192.0.2.2, interface: eth0 }",
  "cluster.name": "name: web",
  "cluster.node": "node: node-a",
  "cluster.vip": "vip: [192.0.2.2, 2001:db8::2]",
  "cluster.interface": "interface: eth0",
  "cluster.buckets": "buckets: 1024",
  "cluster.hash": "hash: source-port",
  "cluster.etcd": "etcd: [https://192.0.2.10:2379, https://192.0.2.11:2379]",
  "cluster.lease": "lease: 3s",
  api: "api: { listen: 127.0.0.1:9110 }",
  "api.listen": "listen: 0.0.0.0:9110",
  "api.token": "token: 0123456789abcdef",
  on_change: "on_change: [/usr/local/bin/nflb-notify, --to, ops]",
};

/** Bounds that come from checks across keys (src/config/cross-checks.ts, owned-ranges.ts). */
const CROSS_BOUNDS: Record<string, string> = {
  mark_mask: "one contiguous run of at least 2 bits, with room for every uplink",
  table_base: "table_base … table_base + uplinks must not include 0, 253, 254 or 255",
  rule_priority_base: "rule_priority_base + 999 stays below 32766 (the main table's rule)",
  uplinks: `at most ${LIMITS.uplinks} uplinks, and no more than mark_mask has room for`,
  services: `at most ${LIMITS.services} services`,
  "uplinks.*.interface": "one uplink per interface",
  "uplinks.*.probe.timeout": "at most 10 × interval",
  "uplinks.*.probe.min_targets": "at most the number of targets",
  "rules.[].via": "names defined under uplinks",
  "dns.max_ttl": "at least min_ttl",
  "balance.primary": "names defined under uplinks",
  "cluster.etcd": "http:// or https:// URLs: scheme, host and port only (no credentials)",
};

interface Entry {
  path: string;
  node: Json;
  zod: z.ZodType | undefined;
}

/** Every key of the JSON Schema, depth first, with the zod schema at the same place. */
function entries(schema: Json): Entry[] {
  const out: Entry[] = [];
  const walk = (node: Json, zod: z.ZodType | undefined, path: string) => {
    const props = node.properties as Record<string, Json> | undefined;
    const shape = zod && shapeOf(zod);
    for (const [k, v] of Object.entries(props ?? {})) {
      const p = path ? `${path}.${k}` : k;
      const zk = shape?.[k];
      out.push({ path: p, node: v, zod: zk });
      walk(v, zk, p);
    }
    const inner = zod && unwrap(zod);
    const def = inner?._zod.def as { valueType?: z.ZodType; element?: z.ZodType } | undefined;
    if (node.additionalProperties && typeof node.additionalProperties === "object")
      walk(node.additionalProperties as Json, def?.valueType, `${path}.*`);
    if (node.items && typeof node.items === "object") walk(node.items as Json, def?.element, `${path}.[]`);
  };
  walk(schema, configSchema, "");
  return out;
}

function shapeOf(s: z.ZodType): Record<string, z.ZodType> | undefined {
  return (unwrap(s)._zod.def as { shape?: Record<string, z.ZodType> }).shape;
}

/** The value-type description the schema gives itself (address, prefix, duration …). */
function valueDescription(s: z.ZodType | undefined): string | undefined {
  let cur = s;
  for (let i = 0; cur && i < 10; i++) {
    const d = z.globalRegistry.get(cur)?.description;
    if (d) return d;
    const def = cur._zod.def as { innerType?: z.ZodType; in?: z.ZodType };
    cur = def.innerType ?? def.in;
  }
  return undefined;
}

const isDuration = (n: Json) => typeof n.pattern === "string" && n.pattern.includes("ms|s|m|h");

function typeOf(n: Json, valueDesc: string | undefined, inner = false): string {
  if (isDuration(n)) return "duration";
  if (n.const !== undefined) return `\`${JSON.stringify(n.const)}\``;
  if (Array.isArray(n.enum)) return n.enum.map((v) => `\`${String(v)}\``).join(", ");
  if (Array.isArray(n.anyOf)) {
    const alts = (n.anyOf as Json[]).map((a) => typeOf(a, valueDesc, true));
    return [...new Set(alts)].join(" or ");
  }
  switch (n.type) {
    case "null":
      return "`null`";
    case "integer":
      return "integer";
    case "array":
      return `list of ${plural(typeOf((n.items as Json | undefined) ?? {}, undefined, true))}`;
    case "object":
      return n.additionalProperties && typeof n.additionalProperties === "object"
        ? "mapping of names to the keys below"
        : n.properties
          ? "mapping (keys below)"
          : "mapping";
    case "string": {
      if (n.pattern === "^\\d{1,5}-\\d{1,5}$") return "range like `1000-2000`";
      if (n.format === "uri") return "URL";
      const d = valueDesc ?? (inner && typeof n.description === "string" ? n.description : undefined);
      return d ? shortType(d) : "string";
    }
    default:
      return String(n.type ?? "any");
  }
}

function shortType(desc: string): string {
  if (/^an IPv4 or IPv6 address$/.test(desc)) return "IP address";
  if (/^an address or prefix/.test(desc)) return "address or prefix";
  if (/^ADDRESS:PORT/.test(desc)) return "ADDRESS:PORT";
  if (/interface name/.test(desc)) return "interface name";
  if (/^a name:/.test(desc)) return "name";
  return desc.replace(/^an? /, "");
}

const PLURALS: Record<string, string> = {
  "IP address": "IP addresses",
  "address or prefix": "addresses or prefixes",
  "interface name": "interface names",
  name: "names",
  integer: "integers",
  string: "strings",
  URL: "URLs",
  "mapping (keys below)": "mappings (keys below)",
};
const plural = (t: string) => PLURALS[t] ?? t;

function boundsOf(path: string, n: Json, valueDesc: string | undefined): string[] {
  const out: string[] = [];
  const num = (v: unknown) =>
    path === "mark_mask" && typeof v === "number" ? `0x${v.toString(16)}` : String(v);
  const nodes = Array.isArray(n.anyOf) ? [n, ...(n.anyOf as Json[])] : [n];
  for (const x of nodes) {
    if (x.minimum !== undefined && x.maximum !== undefined)
      out.push(`${num(x.minimum)} to ${num(x.maximum)}`);
    else if (x.minimum !== undefined) out.push(`at least ${num(x.minimum)}`);
    else if (x.maximum !== undefined) out.push(`at most ${num(x.maximum)}`);
    if (x.minItems !== undefined && x.maxItems !== undefined)
      out.push(`${String(x.minItems)} to ${String(x.maxItems)} items`);
    else if (x.maxItems !== undefined) out.push(`at most ${String(x.maxItems)} items`);
    else if (x.minItems !== undefined) out.push(`at least ${String(x.minItems)} item`);
    if (x.minLength !== undefined && x.maxLength !== undefined)
      out.push(`${String(x.minLength)} to ${String(x.maxLength)} characters`);
    else if (x.maxLength !== undefined) out.push(`at most ${String(x.maxLength)} characters`);
  }
  const d = valueDesc && /a duration from (\S+) to (\S+?):/.exec(valueDesc);
  if (d) out.push(`${d[1]} to ${d[2]}`);
  if (CROSS_BOUNDS[path]) out.push(CROSS_BOUNDS[path]);
  return [...new Set(out)];
}

function defaultOf(e: Entry): string | undefined {
  const def = e.zod?._zod.def as { type?: string; defaultValue?: unknown } | undefined;
  if (def?.type !== "default") return undefined;
  const v = def.defaultValue;
  if (v !== null && typeof v === "object" && !Array.isArray(v)) return "every key's default";
  if (isDuration(e.node) || (Array.isArray(e.node.anyOf) && (e.node.anyOf as Json[]).some(isDuration)))
    return typeof v === "number" ? `\`${formatDuration(v)}\`` : "`null`";
  if (e.path === "mark_mask" && typeof v === "number") return `\`0x${v.toString(16)}\``;
  if (Array.isArray(v)) return `\`[${v.map(String).join(", ")}]\``;
  return `\`${String(v)}\``;
}

function exampleOf(e: Entry): string {
  const key = e.path.split(".").at(-1) ?? e.path;
  const ex = EXAMPLES[e.path];
  if (ex) return ex;
  const v = defaultOf(e);
  if (v && v.startsWith("`")) return `${key}: ${v.slice(1, -1)}`;
  if (Array.isArray(e.node.enum)) return `${key}: ${String(e.node.enum[0])}`;
  return `${key}: …`;
}

/** `uplinks.*.probe.interval` as an admin reads it: `uplinks.NAME.probe.interval`. */
function display(path: string): string {
  return path
    .replace(/^uplinks\.\*/, "uplinks.NAME")
    .replace(/^services\.\*/, "services.NAME")
    .replace(/\.\[\]/g, "[]");
}

const SECTIONS: [string, string][] = [
  ["", "Top level"],
  ["uplinks", "uplinks: outgoing balancing"],
  ["balance", "balance: how new connections are divided"],
  ["rules", "rules: exceptions to the balance"],
  ["services", "services: inbound balancing (DNAT)"],
  ["cluster", "cluster: a shared VIP"],
  ["dns", "dns: the forwarder behind rules[].domains"],
  ["api", "api: the daemon's HTTP API"],
];

const INTRO = `# nflb configuration reference

<!-- Generated from src/config/schema.ts by scripts/gen-config-doc.ts (npm run gen:schema). Do not edit by hand. -->

One YAML file, \`/etc/nflb/nflb.yaml\` by default (\`-c FILE\` for every verb). A config needs
\`version: 1\` and at least one of \`uplinks\`, \`services\` or \`cluster\`; every other key is
optional. Unknown keys are errors (with a "did you mean" when one is close).

- **Durations** are text with a unit: \`500ms\`, \`2s\`, \`1.5s\`, \`30m\`, \`1h\`, \`7d\`. A bare number
  is refused with the unit to add (\`interval: 200\` → "add a unit: 200ms"). Every duration has
  bounds, all within what the daemon's timers can hold.
- **Names** (uplinks, services, rules, nodes) are lower-case letters, digits, \`_\` and \`-\`,
  starting with a letter, at most 31 characters.
- **Addresses** are IPv4 or IPv6 anywhere unless a key says otherwise; IPv6 is compared in its
  canonical form, so \`2001:0db8::10\` and \`2001:db8::10\` are the same VIP.
- **Lists** are YAML lists, \`[a, b]\` or one item per \`- \` line. \`gateway\` and \`vip\` also take
  a single value.
- **Uplink identity** follows the name, not the YAML order: each uplink holds a slot k that gives
  its mark (\`k << shift\` inside \`mark_mask\`), route table (\`table_base + k\`) and rule
  priority. A name keeps its slot across reloads and restarts (the state file records them), so
  adding, moving or removing another uplink never moves an established connection; a new name
  takes the lowest free slot whose mark no conntrack entry still carries; \`id: K\` pins one.
  Removing an uplink flushes its connections (and only those). See docs/DATAPLANE.md, "Marks".

\`nflb check -c FILE\` validates a config: every error names the YAML path and line and says how
to fix it; nothing is touched. It also prints **warnings**, and still exits 0, for configs that
run but are probably not what was meant: an uplink without probe targets (it never fails over on
an upstream outage), a gateway outside its interface's subnets, a \`mark_mask\` that overlaps the
marks of tools seen in the config or on the host (wg-quick's \`0xca6c\`, Tailscale, kube-proxy,
Cilium, or the low byte \`0xff\` most scripts use), and owned tables that include strongSwan's
(220) or wg-quick's (51820). \`check --offline\` skips the checks against this host.
`;

export async function generateConfigDoc(): Promise<string> {
  const all = entries(buildSchema());
  const parts: string[] = [INTRO];
  for (const [root, title] of SECTIONS) {
    const mine = all.filter((e) =>
      root === ""
        ? !e.path.includes(".") && !SECTIONS.some(([r]) => r && r === e.path)
        : e.path === root || e.path.startsWith(`${root}.`),
    );
    if (mine.length === 0) continue;
    parts.push(`## ${title}\n`);
    for (const e of mine) parts.push(renderEntry(e));
  }
  const rest = all.filter(
    (e) =>
      !SECTIONS.some(([r]) =>
        r === "" ? !e.path.includes(".") : e.path === r || e.path.startsWith(`${r}.`),
      ),
  );
  if (rest.length > 0) {
    parts.push("## Other keys\n");
    for (const e of rest) parts.push(renderEntry(e));
  }
  const text = parts.join("\n");
  const options = (await prettier.resolveConfig(CONFIG_DOC_FILE)) ?? {};
  return prettier.format(text, { ...options, parser: "markdown" });
}

function renderEntry(e: Entry): string {
  const valueDesc = valueDescription(e.zod);
  const desc = DESCRIPTIONS[e.path] ?? (typeof e.node.description === "string" ? e.node.description : "");
  const facts = [`type: ${typeOf(e.node, valueDesc)}`];
  const d = defaultOf(e);
  const required = isRequired(e);
  facts.push(d ? `default: ${d}` : required ? "required" : "optional");
  const bounds = boundsOf(e.path, e.node, valueDesc);
  if (bounds.length) facts.push(`bounds: ${bounds.join("; ")}`);
  const example = exampleOf(e);
  const exampleBlock = example.includes("\n")
    ? `\n\`\`\`yaml\n${example}\n\`\`\`\n`
    : `\nExample: \`${example}\`\n`;
  return `### \`${display(e.path)}\`\n\n${desc}\n\n${facts.map((f) => `- ${f}`).join("\n")}\n${exampleBlock}`;
}

function isRequired(e: Entry): boolean {
  const t = (e.zod?._zod.def as { type?: string } | undefined)?.type;
  return t !== undefined && t !== "optional" && t !== "default" && t !== "nullable";
}
