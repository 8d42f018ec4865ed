// Issue 6, "what it must show" 4: `nflb explain` agrees with where real connections go, for every
// rule kind of the example configs (pinned via list, via main, protocol/port, sticky, the router's
// own bound and unbound traffic, source-hash and source-dest-hash, round-robin, random), for a
// service's backends (source-hash and round-robin), and its jhash is the kernel's.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import { explain } from "../../src/explain/explain.ts";
import { parseQuery } from "../../src/explain/packet.ts";
import type { UplinkOutcome } from "../../src/explain/uplinks.ts";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import { addrBytes, concatKey, nftJhash, portBytes } from "../../src/nft/ruleset/jhash.ts";
import { parseAddr } from "../../src/net/ip.ts";
import { allHealthy } from "../../src/plan/desired.ts";
import { bySourceSeen, ConfigDir, nflbOk } from "./support/nflb.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

interface ExplainJson {
  kind: string;
  rule: string | null;
  uplinks?: { outcome: UplinkOutcome };
}

describe("nflb explain agrees with real connections", { skip, timeout: 400_000 }, () => {
  const lab = new UplinkLab({ uplinks: 3, clientAddresses: 40 });
  const cfg = new ConfigDir();
  const echo = lab.ports.echo;
  const peerOf = (i: number) => lab.uplink(i).router4;
  const nameOfPeer = (peer: string) => `isp${lab.uplinks.find((u) => u.router4 === peer)?.index ?? "?"}`;

  before(() => lab.build(), { timeout: 90_000 });
  after(async () => {
    await lab.destroy();
    cfg.cleanup();
  });

  const configText = (balance: string, rules = "", weights = [1, 1, 0]) => `version: 1
uplinks:
${lab.uplinks
  .map((u, i) => `  isp${u.index}: { interface: ${u.wanIf}, gateway: ${u.gateway4}, weight: ${weights[i]} }`)
  .join("\n")}
balance:
  from: [lan0]
${balance}
${rules}`;

  const applyText = async (text: string) => {
    const file = cfg.write(text);
    await nflbOk(lab, "router", ["apply", "-c", file]);
    return file;
  };

  const cli = async (file: string, args: string[]): Promise<ExplainJson> =>
    JSON.parse(await nflbOk(lab, "router", ["explain", ...args, "-c", file, "--json"])) as ExplainJson;

  const uplinkOf = (e: ExplainJson) => {
    const o = e.uplinks?.outcome;
    return o?.kind === "uplink" ? o.uplink : (o?.kind ?? e.kind);
  };

  /** Where real connections from `sources` (or the client's own address) to dst:port went. */
  const seen = async (from: string, dst: string, port: number, count: number, sources?: string[]) => {
    const r = await lab.runClient({
      from,
      dst,
      port,
      count,
      parallel: 4,
      deadlineMs: 40_000,
      ...(sources ? { sources } : {}),
    });
    assert.equal(r.failed, 0, r.errors.join("; "));
    return r;
  };

  test(
    "rules: pinned via list, via main, protocol/port, sticky; the router's own traffic",
    { timeout: 180_000 },
    async () => {
      const [t1 = "", t2 = ""] = lab.addr.targets4;
      const server = lab.addr.server4;
      const client = lab.addr.lan.clients[0]?.v4 ?? "";
      // As in the three-links example: a pinned list, a private line via main, a port rule, a sticky rule.
      const file = await applyText(
        configText(
          "  method: random",
          `rules:
  - { name: pinned, destination: [${t1}/32], via: [isp2, isp1] }
  - { name: peers, destination: [${t2}/32], via: main }
  - { name: tls, protocol: tcp, port: 443, via: [isp3] }
  - { name: sticky, destination: [${server}/32], sticky: 30m }`,
        ),
      );
      // The main table's default goes by isp3, which has weight 0: only `via: main` and the port rule use it.
      await lab.run("router", ["ip", "route", "replace", "default", "via", lab.uplink(3).gateway4]);
      try {
        const pinned = await cli(file, [client, t1, "tcp", String(echo)]);
        assert.equal(pinned.rule, "pinned");
        assert.equal(uplinkOf(pinned), "isp2");
        assert.deepEqual(bySourceSeen(await seen("lan", t1, echo, 20)), { [peerOf(2)]: 20 });

        const main = await cli(file, [client, t2, "tcp", String(echo)]);
        assert.equal(main.rule, "peers");
        assert.equal(uplinkOf(main), "main");
        assert.deepEqual(
          bySourceSeen(await seen("lan", t2, echo, 20)),
          { [peerOf(3)]: 20 },
          "the main table's way",
        );

        const tls = await cli(file, [client, server, "tcp", String(lab.ports.tcp)]);
        assert.equal(tls.rule, "tls");
        assert.equal(uplinkOf(tls), "isp3");
        assert.deepEqual(bySourceSeen(await seen("lan", server, lab.ports.tcp, 20)), { [peerOf(3)]: 20 });

        // Sticky: before the pair has connected explain can only give the odds; afterwards it reads
        // the kernel's memory and names the very uplink the connections used.
        const fresh = await cli(file, [client, server, "tcp", String(echo)]);
        assert.equal(fresh.rule, "sticky");
        assert.equal(fresh.uplinks?.outcome.kind, "spread");
        const sticky = bySourceSeen(await seen("lan", server, echo, 20));
        assert.equal(Object.keys(sticky).length, 1, JSON.stringify(sticky));
        const kept = await cli(file, [client, server, "tcp", String(echo)]);
        assert.equal(kept.rule, "sticky");
        assert.equal(uplinkOf(kept), nameOfPeer(Object.keys(sticky)[0] ?? ""));

        // The router's own traffic: bound to isp3's address it leaves by isp3; unbound by the primary.
        const bound = await cli(file, [peerOf(3), server, "tcp", String(echo)]);
        assert.equal(uplinkOf(bound), "isp3");
        assert.deepEqual(bySourceSeen(await seen("router", server, echo, 10, [peerOf(3)])), {
          [peerOf(3)]: 10,
        });
        const own = await cli(file, [lab.addr.lan.router4, server, "tcp", String(echo)]);
        assert.equal(uplinkOf(own), "isp1");
        assert.deepEqual(bySourceSeen(await seen("router", server, echo, 10)), { [peerOf(1)]: 10 });
      } finally {
        await lab.run("router", ["ip", "route", "del", "default"]);
      }
    },
  );

  for (const method of ["source-hash", "source-dest-hash"] as const) {
    test(`${method}: explain names the uplink of every source`, { timeout: 120_000 }, async () => {
      const text = configText(`  method: ${method}`, "", [1, 1, 1]);
      const file = await applyText(text);
      const config = parseConfig(text);
      const sources = lab.addr.lan.extra;
      const dsts = method === "source-hash" ? [lab.addr.server4] : [lab.addr.server4, ...lab.addr.targets4];
      const used = new Set<string>();
      for (const dst of dsts) {
        const r = await seen("lan", dst, echo, sources.length * 2, sources);
        for (const src of sources) {
          const peers = Object.keys(r.bySource[src] ?? {}).map((l) => l.split(" ").pop() ?? "");
          assert.equal(peers.length, 1, `${src} → ${dst} used ${peers.join(", ")}`);
          const q = parseQuery({ src, dst, proto: "tcp", port: String(echo) });
          assert.ok(!("error" in q));
          const e = explain(config, q, {
            health: allHealthy(config),
            healthSource: "test",
            facts: { interfaces: new Map() },
          });
          const o = e.uplinks?.outcome;
          assert.equal(o?.kind === "uplink" && o.uplink, nameOfPeer(peers[0] ?? ""), `${src} → ${dst}`);
          used.add(peers[0] ?? "");
        }
      }
      assert.equal(used.size, 3, "the sources spread over every uplink");
      // The command line too, for a few of them.
      for (const src of sources.slice(0, 3)) {
        const r = await seen("lan", lab.addr.server4, echo, 2, [src]);
        const e = await cli(file, [src, lab.addr.server4, "tcp", String(echo)]);
        assert.equal(uplinkOf(e), nameOfPeer(Object.keys(bySourceSeen(r))[0] ?? ""));
      }
    });
  }

  test("round-robin: the rotation's exact counts; random: its odds", { timeout: 120_000 }, async () => {
    const rr = await applyText(configText("  method: round-robin", "", [2, 1, 1]));
    const e = await cli(rr, [lab.addr.lan.clients[0]?.v4 ?? "", lab.addr.server4, "tcp", String(echo)]);
    const o = e.uplinks?.outcome;
    assert.ok(o?.kind === "spread" && o.method === "round-robin" && o.rotation, JSON.stringify(o));
    const n = o.rotation.length * 30;
    const got = bySourceSeen(await seen("lan", lab.addr.server4, echo, n));
    for (const s of o.shares)
      assert.equal(
        got[peerOf(Number(s.name.slice(3)))] ?? 0,
        s.share * n,
        `${s.name}: ${JSON.stringify(got)}`,
      );

    const rnd = await applyText(configText("  method: random", "", [1, 1, 0]));
    const r = await cli(rnd, [lab.addr.lan.clients[0]?.v4 ?? "", lab.addr.server4, "tcp", String(echo)]);
    const ro = r.uplinks?.outcome;
    assert.deepEqual(ro?.kind === "spread" && ro.shares, [
      { name: "isp1", share: 0.5 },
      { name: "isp2", share: 0.5 },
    ]);
    const dist = bySourceSeen(await seen("lan", lab.addr.server4, echo, 200));
    assert.equal(dist[peerOf(3)] ?? 0, 0, "isp3 has no share");
    for (const i of [1, 2]) assert.ok((dist[peerOf(i)] ?? 0) >= 60, JSON.stringify(dist));
  });

  test("services: explain names the backend each connection is DNATed to", { timeout: 120_000 }, async () => {
    const [t1 = "", t2 = ""] = lab.addr.targets4;
    const vip = lab.addr.lan.router4;
    const text = `${configText("  method: random", "", [1, 1, 1])}
services:
  hashed:
    listen: ${vip}:7001
    scheduler: source-hash
    backends: [{ address: ${t1}:${echo} }, { address: ${t2}:${echo} }]
  rr:
    listen: ${vip}:7002
    scheduler: round-robin
    backends: [{ address: ${t1}:${echo}, weight: 2 }, { address: ${t2}:${echo} }]
`;
    const file = await applyText(text);
    const config = parseConfig(text);
    // DNATed connections follow the main table, whose default goes by isp1 here.
    await lab.run("router", ["ip", "route", "replace", "default", "via", lab.uplink(1).gateway4]);
    /** Where the router's conntrack says each connection to the VIP port went: source → backends. */
    const dnatted = async (port: number) => {
      const out = await lab.run("router", ["conntrack", "-L", "-p", "tcp", "--dport", String(port)]);
      const by = new Map<string, string[]>();
      for (const line of out.split("\n")) {
        const m = /src=(\S+) dst=\S+ sport=\d+ dport=(\d+) .*?src=(\S+) dst=/.exec(line);
        if (!m || Number(m[2]) !== port) continue;
        by.set(m[1] ?? "", [...(by.get(m[1] ?? "") ?? []), `${m[3]}:${echo}`]);
      }
      return by;
    };
    try {
      await lab.run("router", ["conntrack", "-F"]);
      const sources = lab.addr.lan.extra.slice(0, 20);
      await seen("lan", vip, 7001, sources.length, sources);
      const got = await dnatted(7001);
      const backends = new Set<string>();
      for (const src of sources) {
        const q = parseQuery({ src, dst: vip, proto: "tcp", port: "7001" });
        assert.ok(!("error" in q));
        const e = explain(config, q, {
          health: allHealthy(config),
          healthSource: "test",
          facts: { interfaces: new Map() },
        });
        const o = e.service?.outcome;
        assert.ok(o?.kind === "backend", JSON.stringify(e));
        assert.deepEqual(got.get(src), [o.backend], src);
        backends.add(o.backend);
      }
      assert.equal(backends.size, 2, "the sources spread over both backends");
      const one = await cli(file, [sources[0] ?? "", vip, "tcp", "7001"]);
      assert.equal(one.kind, "service");

      const rr = (await cli(file, [lab.addr.lan.clients[0]?.v4 ?? "", vip, "tcp", "7002"])) as ExplainJson & {
        service?: {
          outcome: { kind: string; shares?: { name: string; share: number }[]; rotation?: string[] };
        };
      };
      const o = rr.service?.outcome;
      assert.ok(o?.kind === "spread" && o.rotation && o.shares, JSON.stringify(rr));
      const n = o.rotation.length * 10;
      await seen("lan", vip, 7002, n);
      const counts: Record<string, number> = {};
      for (const list of (await dnatted(7002)).values())
        for (const b of list) counts[b] = (counts[b] ?? 0) + 1;
      for (const s of o.shares)
        assert.equal(counts[s.name] ?? 0, s.share * n, `${s.name}: ${JSON.stringify(counts)}`);
    } finally {
      await lab.run("router", ["ip", "route", "del", "default"]);
    }
  });

  test(
    "the kernel's jhash of source . source port (a cluster's key) is explain's",
    { timeout: 60_000 },
    async () => {
      // A throw-away table in the internet namespace marks each arriving connection with the hash.
      const seed = 0x2f1e3d4c;
      const table = "explain_jhash";
      await lab.run("inet", ["nft", "-f", "-"], {
        input: `table inet ${table} {
  chain pre { type filter hook prerouting priority 0; policy accept;
    tcp dport ${echo} ct state new ct mark set jhash ip saddr . th sport mod 256 seed ${seed}
    udp dport ${echo} ct state new ct mark set jhash ip saddr . ip daddr mod 1000 seed ${seed}
  }
}
`,
      });
      try {
        await lab.run("inet", ["conntrack", "-F"]);
        await seen("lan", lab.addr.server4, echo, 30, lab.addr.lan.extra.slice(0, 10));
        await lab.runClient({
          from: "lan",
          dst: lab.addr.server4,
          port: echo,
          proto: "udp",
          count: 10,
          deadlineMs: 20_000,
        });
        const out = await lab.run("inet", ["conntrack", "-L"]);
        let checked = 0;
        for (const line of out.split("\n")) {
          const m = /^(tcp|udp)\s.*?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) .*mark=(\d+)/.exec(line);
          if (!m || Number(m[5]) !== echo) continue;
          const [, proto, src = "", dst = "", sport, , mark] = m;
          const s = addrBytes(parseAddr(src) ?? { family: 4, text: "" });
          const want =
            proto === "tcp"
              ? nftJhash(concatKey(s, portBytes(Number(sport))), 256, seed)
              : nftJhash(concatKey(s, addrBytes(parseAddr(dst) ?? { family: 4, text: "" })), 1000, seed);
          assert.equal(Number(mark), want, line);
          checked++;
        }
        assert.ok(checked >= 20, `checked ${checked} connections:\n${out}`);
      } finally {
        await lab.run("inet", ["nft", "delete", "table", "inet", table]);
      }
    },
  );
});
