import type { Config } from "./schema.ts";
import type { ConfigIssue } from "./issues.ts";
import { formatHostPort, parseAddr, parseHostPort } from "../net/ip.ts";
import { staticGateways } from "../net/gateways.ts";
import { markLayout } from "./marks.ts";
import { checkOwnedRanges, maxSlot, slotUsable } from "./owned-ranges.ts";
import { LIMITS, passiveOf } from "./limits.ts";
import { didYouMean } from "./suggest.ts";
import { recoveryMarkErrors } from "./overflow-checks.ts";

/** Checks that span several keys; the schema has already validated each value on its own. */
export function crossCheck(c: Config): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const err = (path: ConfigIssue["path"], message: string) => out.push({ path, message });

  if (!c.uplinks && !c.services && !c.cluster) {
    err(
      [],
      "a config needs at least one of `uplinks`, `services` or `cluster`: add one (see docs/CONFIG.md)",
    );
  }

  const layout = markLayout(c.mark_mask);
  if ("error" in layout) err(["mark_mask"], `${layout.error}: like mark_mask: 0xff00`);

  const uplinks = Object.entries(c.uplinks ?? {});
  const names = new Set(uplinks.map(([n]) => n));
  if (c.uplinks && uplinks.length === 0) err(["uplinks"], "`uplinks` is empty; remove it or add an uplink");
  if (uplinks.length > LIMITS.uplinks)
    err(["uplinks"], `at most ${LIMITS.uplinks} uplinks (has ${uplinks.length})`);
  if (!("error" in layout) && uplinks.length > layout.maxUplinks) {
    err(
      ["mark_mask"],
      `mark_mask leaves room for ${layout.maxUplinks} uplinks, the config has ${uplinks.length}: widen it, like mark_mask: 0xff00`,
    );
  }
  if (uplinks.length > 0) out.push(...checkOwnedRanges(c).errors);
  const pinned = new Map<number, string>();
  for (const [n, u] of uplinks) {
    if (u.id === undefined) continue;
    const other = pinned.get(u.id);
    if (other !== undefined)
      err(["uplinks", n, "id"], `id ${u.id} is already uplink ${other}'s: give each uplink its own id`);
    else if (u.id > maxSlot(c))
      err(
        ["uplinks", n, "id"],
        `id ${u.id} is above the highest slot ${maxSlot(c)} that mark_mask leaves room for`,
      );
    else if (!slotUsable(c, u.id))
      err(
        ["uplinks", n, "id"],
        `id ${u.id} would use table ${c.table_base + u.id}, which belongs to the kernel or another tool: pick another id`,
      );
    pinned.set(u.id, n);
  }
  if (uplinks.length > 0 && uplinks.every(([, u]) => u.weight === 0)) {
    err(["uplinks"], "at least one uplink needs a weight above 0: give the main link weight: 1");
  }
  const ifaces = new Map<string, string>();
  for (const [n, u] of uplinks) {
    const prev = ifaces.get(u.interface);
    if (prev)
      err(
        ["uplinks", n, "interface"],
        `interface ${u.interface} is already used by uplink ${prev}: one uplink per interface`,
      );
    ifaces.set(u.interface, n);
    const fams = staticGateways(u.gateway).map((g) => parseAddr(g)?.family);
    if (fams.filter((f) => f === 4).length > 1 || fams.filter((f) => f === 6).length > 1) {
      err(["uplinks", n, "gateway"], "at most one IPv4 and one IPv6 gateway: keep the one the ISP gave");
    }
    const p = u.probe;
    if (p.targets.length > 0 && p.min_targets > p.targets.length) {
      err(
        ["uplinks", n, "probe", "min_targets"],
        `min_targets (${p.min_targets}) exceeds the ${p.targets.length} targets: lower it or add targets`,
      );
    }
    if (p.timeout > p.interval * 10)
      err(
        ["uplinks", n, "probe", "timeout"],
        "timeout is more than 10 intervals: shorten it or lengthen interval",
      );
  }

  out.push(...recoveryMarkErrors(c));

  const b = c.balance;
  const unknownUplink = (n: string) => {
    const guess = didYouMean(n, [...names]);
    return `unknown uplink ${n}: ${guess ? `did you mean ${guess}?` : names.size ? `the uplinks are ${[...names].join(", ")}` : "define it under uplinks"}`;
  };
  b.primary?.forEach((p, i) => {
    if (!names.has(p)) err(["balance", "primary", i], unknownUplink(p));
  });
  b.from?.forEach((f, i) => {
    if (ifaces.has(f))
      err(
        ["balance", "from", i],
        `${f} is an uplink interface; \`from\` lists LAN-side interfaces: remove it`,
      );
  });

  const ruleNames = new Set<string>();
  c.rules.forEach((r, i) => {
    if (ruleNames.has(r.name))
      err(["rules", i, "name"], `duplicate rule name ${r.name}: give each rule its own name`);
    ruleNames.add(r.name);
    if (r.via === undefined && r.sticky === undefined)
      err(["rules", i], "a rule needs `via` or `sticky`: add via: [UPLINK], via: main or sticky: 30m");
    if (Array.isArray(r.via)) {
      r.via.forEach((v, j) => {
        if (!names.has(v)) err(["rules", i, "via", j], unknownUplink(v));
      });
    }
    if (r.port !== undefined && r.protocol === "icmp")
      err(["rules", i, "port"], "icmp has no ports: remove port, or use protocol: tcp or udp");
    if (uplinks.length === 0)
      err(["rules", i], "rules choose among uplinks: add an `uplinks` section, or remove the rules");
  });

  if (c.dns && c.dns.min_ttl > c.dns.max_ttl)
    err(["dns", "max_ttl"], "max_ttl must be at least min_ttl: raise max_ttl or lower min_ttl");

  const services = Object.entries(c.services ?? {});
  if (services.length > LIMITS.services)
    err(["services"], `at most ${LIMITS.services} services (has ${services.length})`);
  // Addresses compare in canonical form: 2001:0db8::10 and 2001:db8::10 are one VIP.
  const listens = new Map<string, { name: string; text: string }>();
  for (const [n, s] of services) {
    const key = `${s.protocol} ${canonicalHostPort(s.listen)}`;
    const prev = listens.get(key);
    if (prev)
      err(
        ["services", n, "listen"],
        `${s.protocol} ${s.listen} is already used by service ${prev.name}${prev.text !== s.listen ? ` (written ${prev.text} there)` : ""}: give each service its own address or port`,
      );
    listens.set(key, { name: n, text: s.listen });
    const pv = passiveOf(s.check);
    if (pv && s.protocol !== "tcp")
      err(["services", n, "check", "passive"], "passive checks watch TCP handshakes: remove passive for udp");
    else if (pv && s.check.method === "none")
      err(
        ["services", n, "check", "passive"],
        "a backend the passive check takes down comes back through the active check: set check.method (tcp or http)",
      );
    else if (pv && pv.fall > pv.window)
      err(
        ["services", n, "check", "passive", "fall"],
        `fall (${pv.fall}) exceeds window (${pv.window}): lower it`,
      );
    const lf = familyOf(s.listen);
    const seen = new Map<string, string>();
    s.backends.forEach((be, i) => {
      // One parse per backend: a config may hold 250,000 of them.
      const p = parseHostPort(be.address);
      const key = "error" in p ? be.address : formatHostPort(p.addr, p.port);
      const prev = seen.get(key);
      if (prev !== undefined)
        err(
          ["services", n, "backends", i, "address"],
          `duplicate backend ${be.address}${prev !== be.address ? ` (also written ${prev})` : ""}: list each backend once, with a weight`,
        );
      seen.set(key, be.address);
      if (("error" in p ? undefined : p.addr.family) !== lf) {
        err(
          ["services", n, "backends", i, "address"],
          "backend and listen address must be the same IP family: nflb does not translate between IPv4 and IPv6",
        );
      }
    });
  }

  if (c.cluster) {
    const vips = c.cluster.vip.map((v) => parseAddr(v));
    const fams = vips.map((v) => v?.family);
    if (vips[0] && vips[1] && vips[0].text === vips[1].text) {
      err(["cluster", "vip", 1], `${c.cluster.vip[1]} is ${c.cluster.vip[0]} written again: list it once`);
    } else if (fams.filter((f) => f === 4).length > 1 || fams.filter((f) => f === 6).length > 1) {
      err(["cluster", "vip"], "at most one IPv4 and one IPv6 VIP");
    }
    out.push(...etcdEndpointIssues(c.cluster.etcd));
  }
  return out;
}

/** etcd is spoken over HTTP(S) only; anything else would pass here and fail at the first request. */
function etcdEndpointIssues(urls: string[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  urls.forEach((u, i) => {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      return; // the schema reported it
    }
    if (url.protocol !== "http:" && url.protocol !== "https:")
      out.push({
        path: ["cluster", "etcd", i],
        message: `etcd endpoints are http:// or https:// URLs (got ${url.protocol}//): write it like https://${url.host || "192.0.2.10:2379"}`,
      });
    else if (url.username || url.password)
      out.push({
        path: ["cluster", "etcd", i],
        message: `remove the user name and password from the URL (write ${url.protocol}//${url.host}): a URL is shown in logs and status, credentials must not be; use cluster.etcd_auth (username, password_file)`,
      });
    else if (url.pathname !== "/" || url.search || url.hash)
      out.push({
        path: ["cluster", "etcd", i],
        message: `an etcd endpoint is a scheme, host and port only: write ${url.protocol}//${url.host}`,
      });
  });
  return out;
}

function canonicalHostPort(s: string): string {
  const p = parseHostPort(s);
  return "error" in p ? s : formatHostPort(p.addr, p.port);
}

function familyOf(hostPort: string): 4 | 6 | undefined {
  const p = parseHostPort(hostPort);
  return "error" in p ? undefined : p.addr.family;
}
