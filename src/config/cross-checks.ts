import type { Config } from "./schema.ts";
import type { ConfigIssue } from "./issues.ts";
import { parseAddr, parseHostPort } from "../net/ip.ts";
import { markLayout } from "./marks.ts";

/** Checks that span several keys; the schema has already validated each value on its own. */
export function crossCheck(c: Config): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const err = (path: ConfigIssue["path"], message: string) => out.push({ path, message });

  if (!c.uplinks && !c.services && !c.cluster) {
    err([], "a config needs at least one of `uplinks`, `services` or `cluster`");
  }

  const layout = markLayout(c.mark_mask);
  if ("error" in layout) err(["mark_mask"], layout.error);

  const uplinks = Object.entries(c.uplinks ?? {});
  const names = new Set(uplinks.map(([n]) => n));
  if (c.uplinks && uplinks.length === 0) err(["uplinks"], "`uplinks` is empty; remove it or add an uplink");
  if (uplinks.length > 100) err(["uplinks"], "at most 100 uplinks");
  if (!("error" in layout) && uplinks.length > layout.maxUplinks) {
    err(
      ["mark_mask"],
      `mark_mask leaves room for ${layout.maxUplinks} uplinks, the config has ${uplinks.length}`,
    );
  }
  if (uplinks.length > 0 && uplinks.every(([, u]) => u.weight === 0)) {
    err(["uplinks"], "at least one uplink needs a weight above 0");
  }
  const ifaces = new Map<string, string>();
  for (const [n, u] of uplinks) {
    const prev = ifaces.get(u.interface);
    if (prev) err(["uplinks", n, "interface"], `interface ${u.interface} is already used by uplink ${prev}`);
    ifaces.set(u.interface, n);
    const fams = (u.gateway ?? []).map((g) => parseAddr(g)?.family);
    if (fams.filter((f) => f === 4).length > 1 || fams.filter((f) => f === 6).length > 1) {
      err(["uplinks", n, "gateway"], "at most one IPv4 and one IPv6 gateway");
    }
    const p = u.probe;
    if (p.targets.length > 0 && p.min_targets > p.targets.length) {
      err(
        ["uplinks", n, "probe", "min_targets"],
        `min_targets (${p.min_targets}) exceeds the ${p.targets.length} targets`,
      );
    }
    if (p.timeout > p.interval * 10)
      err(["uplinks", n, "probe", "timeout"], "timeout is more than 10 intervals");
  }

  const b = c.balance;
  b.primary?.forEach((p, i) => {
    if (!names.has(p)) err(["balance", "primary", i], `unknown uplink ${p}`);
  });
  b.from?.forEach((f, i) => {
    if (ifaces.has(f))
      err(["balance", "from", i], `${f} is an uplink interface; \`from\` lists LAN-side interfaces`);
  });

  const ruleNames = new Set<string>();
  c.rules.forEach((r, i) => {
    if (ruleNames.has(r.name)) err(["rules", i, "name"], `duplicate rule name ${r.name}`);
    ruleNames.add(r.name);
    if (r.via === undefined && r.sticky === undefined) err(["rules", i], "a rule needs `via` or `sticky`");
    if (Array.isArray(r.via)) {
      r.via.forEach((v, j) => {
        if (!names.has(v)) err(["rules", i, "via", j], `unknown uplink ${v}`);
      });
    }
    if (r.port !== undefined && r.protocol === "icmp") err(["rules", i, "port"], "icmp has no ports");
    if (uplinks.length === 0) err(["rules", i], "rules need `uplinks`");
  });

  const listens = new Map<string, string>();
  for (const [n, s] of Object.entries(c.services ?? {})) {
    const key = `${s.protocol} ${s.listen}`;
    const prev = listens.get(key);
    if (prev) err(["services", n, "listen"], `${key} is already used by service ${prev}`);
    listens.set(key, n);
    const lf = familyOf(s.listen);
    const seen = new Set<string>();
    s.backends.forEach((be, i) => {
      if (seen.has(be.address))
        err(["services", n, "backends", i, "address"], `duplicate backend ${be.address}`);
      seen.add(be.address);
      if (familyOf(be.address) !== lf) {
        err(
          ["services", n, "backends", i, "address"],
          "backend and listen address must be the same IP family",
        );
      }
    });
  }

  if (c.cluster) {
    const fams = c.cluster.vip.map((v) => parseAddr(v)?.family);
    if (fams.filter((f) => f === 4).length > 1 || fams.filter((f) => f === 6).length > 1) {
      err(["cluster", "vip"], "at most one IPv4 and one IPv6 VIP");
    }
  }
  return out;
}

function familyOf(hostPort: string): 4 | 6 | undefined {
  const p = parseHostPort(hostPort);
  return "error" in p ? undefined : p.addr.family;
}
