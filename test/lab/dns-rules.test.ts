// Rules by domain name with a real resolver chain: LAN clients → nflb's forwarder (`nflb run`,
// dns.listen on the router's LAN address) → a caching dnsmasq → an authoritative dnsmasq (TTL 5 s),
// both in the internet namespace. A resolved name's connections leave by the rule's uplink; the
// address leaves the rule's sets after its TTL (floor min_ttl) when no answer and no connection
// keeps it; an open connection keeps it; a cached answer to a second client refreshes it; 10,000
// malformed DNS packets change nothing but a counter. Needs root.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { ipBatch } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import { LAN } from "../../src/lab/addressing.ts";
import { toolArgv } from "../../src/lab/traffic.ts";
import { DaemonFixture, NFLB, http, labConfig, sleep, status } from "../../testkit/daemon-harness.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

const AUTH = "203.0.113.53";
const CACHE = "203.0.113.54";
const HOSTS = {
  "video.example": "203.0.113.20",
  "keep.example": "203.0.113.21",
  "cached.example": "203.0.113.22",
  "other.example": "203.0.113.23",
  "edge.cdn.test": "203.0.113.24",
} as const;
const ECHO = 7000;
const HOLD = 7001;
const TTL_S = 5;

interface Resolved {
  name: string;
  rcode: string;
  addresses: string[];
  ttls: number[];
  ms: number;
}

/** nft's durations (`4s996ms`, `1m2s`, `500ms`) in milliseconds. */
function ms(d: string): number {
  const unit: Record<string, number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  let total = 0;
  for (const [, n, u] of d.matchAll(/(\d+)(ms|d|h|m|s)/g)) total += Number(n) * (unit[u ?? ""] ?? NaN);
  assert.ok(Number.isFinite(total) && /^(\d+(ms|d|h|m|s))+$/.test(d), `nft duration ${d}`);
  return total;
}

describe("rules by domain name (nflb run, dnsmasq resolver chain)", { skip, timeout: 300_000 }, () => {
  const lab = new UplinkLab({ uplinks: 2, lanClients: 2 });
  const isp2 = () => `inet ${lab.uplink(2).router4}`;

  const config = (more: string[] = []) =>
    labConfig(lab, {
      extra: [
        "rules:",
        ...more,
        '  - { name: video, domains: [video.example, "*.video.example", keep.example, cached.example], via: [isp2] }',
        `dns: { listen: ["${LAN.router4}:53"], upstream: [${CACHE}], min_ttl: 4s, keep: 3s }`,
        "",
      ].join("\n"),
    });

  const resolve = async (role: string, names: string[], tcp = false): Promise<Resolved[]> => {
    const args = ["--server", LAN.router4, ...names.flatMap((n) => ["--name", n])];
    if (tcp) args.push("--tcp");
    const r = await lab.exec(role, toolArgv("dns-client", args), { timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Resolved);
  };

  /** Addresses in one of the rule's sets, as the kernel lists them. */
  const members = async (set: string): Promise<Map<string, number>> => {
    const r = await lab.exec("router", ["nft", "-j", "list", "set", "inet", "nflb", set]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
    const out = new Map<string, number>();
    for (const e of j.nftables.find((x) => x.set)?.set?.elem ?? []) {
      if (typeof e === "string") out.set(e, -1);
      else {
        const el = (e as { elem: { val: string; expires?: number } }).elem;
        out.set(el.val, el.expires ?? -1);
      }
    }
    return out;
  };
  /**
   * An address's entry in a rule's set as the kernel tells it (`nft list set`, in ms; the JSON
   * listing rounds to seconds): its timeout, the time it had left, and so when it expires: between
   * `earliest` and `latest` (epoch ms: the kernel read its clock somewhere in the listing).
   */
  const entry = async (set: string, a: string) => {
    const t0 = Date.now();
    const r = await lab.exec("router", ["nft", "list", "set", "inet", "nflb", set]);
    const t1 = Date.now();
    assert.equal(r.code, 0, r.stderr);
    const m = new RegExp(`(?:^|[{,\\s])${a.replaceAll(".", "\\.")} timeout (\\S+) expires ([^,\\s}]+)`).exec(
      r.stdout,
    );
    if (!m) return undefined;
    const expires = ms(m[2] ?? "");
    return { timeoutMs: ms(m[1] ?? ""), leftMs: expires, earliest: t0 + expires, latest: t1 + expires };
  };
  const inDns = async (a: string) => (await members("dom_video_4")).has(a);
  const inKeep = async (a: string) => (await members("dom_video_keep4")).has(a);

  const waitFor = async (what: string, ok: () => Promise<boolean>, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await ok()) return;
      await sleep(200);
    }
    assert.fail(`timed out waiting for ${what}`);
  };

  const connect = (dst: string, count = 8) =>
    lab.runClient({ from: "lan", dst, port: ECHO, count, parallel: 4, timeoutMs: 1000, deadlineMs: 10_000 });

  const metric = async (name: string): Promise<Map<string, number>> => {
    const r = await http(lab, "router", "GET", "http://127.0.0.1:9110/metrics");
    assert.equal(r.code, 200);
    const out = new Map<string, number>();
    for (const l of r.body.split("\n")) {
      const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(l);
      if (m?.[1] === name) out.set(m[2] ?? "", Number(m[3]));
    }
    return out;
  };
  /** UDP datagrams the router's kernel dropped for a full receive buffer (/proc/net/snmp). */
  const rcvbufErrors = async (): Promise<number> => {
    const r = await lab.exec("router", ["cat", "/proc/net/snmp"]);
    const [head, vals] = r.stdout.split("\n").filter((l) => l.startsWith("Udp:"));
    const i = head?.split(/\s+/).indexOf("RcvbufErrors") ?? -1;
    return Number(vals?.split(/\s+/)[i] ?? 0);
  };
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  /** Answered addresses the daemon has to write: new ones, and refreshes (expiry moved later). */
  const toWrite = async () => {
    const m = await metric("nflb_dns_set_updates_total");
    return (m.get('{result="new"}') ?? 0) + (m.get('{result="refreshed"}') ?? 0);
  };
  /**
   * resolve(), then wait (bounded) until what the answer changed is in the kernel: the answer
   * waits for a new address, not for a refresh (written up to 50 ms later, with an nft run).
   */
  const resolveWritten = async (role: string, names: string[]): Promise<Resolved[]> => {
    const writes0 = sum(await metric("nflb_dns_set_writes_total"));
    const changes0 = await toWrite();
    const r = await resolve(role, names);
    if ((await toWrite()) > changes0)
      await waitFor(
        "the daemon to write the sets",
        async () => sum(await metric("nflb_dns_set_writes_total")) > writes0,
        5000,
      );
    return r;
  };

  /** The resolvers and servers of the internet side, before nflb starts. */
  const prepare = async () => {
    await ipBatch(
      lab.netns("inet"),
      [AUTH, CACHE, ...Object.values(HOSTS)].map((a) => `addr add ${a}/32 dev lo`),
    );
    const servers = Object.values(HOSTS);
    await lab.startEchoServer({
      role: "inet",
      name: "inet",
      tcp: servers.map((address) => ({ address, port: ECHO })),
    });
    await lab.startEchoServer({
      role: "inet",
      name: "inet",
      hold: true,
      tcp: servers.map((address) => ({ address, port: HOLD })),
    });
    const dnsmasq = (name: string, listen: string, extra: string[]) => {
      const p = lab.spawn("inet", [
        "dnsmasq",
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        `--listen-address=${listen}`,
        "--bind-interfaces",
        "--port=53",
        `--pid-file=${join(fx.dir, `${name}.pid`)}`,
        "--log-facility=-",
        ...extra,
      ]);
      // dnsmasq logs to stderr; `cleared cache` comes once it listens.
      return waitFor(`dnsmasq ${name}`, async () => p.stderr().includes("cleared cache"), 10_000);
    };
    // The authoritative end: every name with TTL 5 s; www.video.example a CNAME to a CDN name.
    await dnsmasq("auth", AUTH, [
      ...Object.entries(HOSTS).map(([n, a]) => `--host-record=${n},${a}`),
      "--cname=www.video.example,edge.cdn.test",
      `--local-ttl=${TTL_S}`,
    ]);
    // A caching resolver between nflb and the authoritative server: its cached answers carry
    // what is left of the TTL.
    await dnsmasq("cache", CACHE, [`--server=${AUTH}`]);
  };
  // The lab's processes (servers, dnsmasq) are stopped by pid when down() destroys the lab.
  const fx = new DaemonFixture(lab, () => config(), { prepare });

  before(() => fx.up(), { timeout: 120_000 });
  after(() => fx.down(), { timeout: 60_000 });

  test("a resolved name's connections leave by the rule's uplink; the answer waits for the set", async () => {
    const [v, www] = await resolve("lan", ["video.example", "www.video.example"]);
    assert.deepEqual(v?.addresses, [HOSTS["video.example"]]);
    assert.equal(v?.ttls[0], TTL_S);
    // Followed through the CNAME to the CDN name's address.
    assert.deepEqual(www?.addresses, [HOSTS["edge.cdn.test"]]);
    const set = await members("dom_video_4");
    assert.ok(set.has(HOSTS["video.example"]), `set: ${[...set.keys()].join(", ")}`);
    assert.ok(set.has(HOSTS["edge.cdn.test"]));
    const r = await connect(HOSTS["video.example"]);
    assert.equal(r.failed, 0, r.errors.join("; "));
    assert.deepEqual(r.bySeen, { [isp2()]: 8 });
    // A name no rule lists: balanced over both uplinks.
    const [o] = await resolve("lan", ["other.example"]);
    assert.deepEqual(o?.addresses, [HOSTS["other.example"]]);
    const b = await connect(HOSTS["other.example"], 24);
    assert.equal(b.failed, 0);
    assert.equal(Object.keys(b.bySeen).length, 2, JSON.stringify(b.bySeen));
    // Over TCP too.
    const [t] = await resolve("lan2", ["www.video.example"], true);
    assert.deepEqual(t?.addresses, [HOSTS["edge.cdn.test"]]);
    const s = await status(lab);
    const rule = s.dns?.rules.find((x) => x.rule === "video");
    assert.ok(rule && rule.entries4 >= 2, JSON.stringify(s.dns));
    // The entries on request, and `nflb explain` naming the rule, the name and the time left.
    const api = await http(lab, "router", "GET", "http://127.0.0.1:9110/api/v1/dns?rule=video");
    const entries = (JSON.parse(api.body) as { rules: { entries?: { address: string; domain: string }[] }[] })
      .rules[0]?.entries;
    assert.ok(entries?.some((e) => e.address === HOSTS["edge.cdn.test"] && e.domain === "*.video.example"));
    const lan = lab.addr.lan.clients[0]?.v4 ?? "";
    await resolve("lan", ["video.example"]); // its TTL is short: fresh for the explanation
    const ex = await lab.exec("router", [
      NFLB,
      "explain",
      lan,
      HOSTS["video.example"],
      "tcp",
      String(ECHO),
      "-c",
      fx.file,
    ]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.match(ex.stdout, /203\.0\.113\.20 matches rule video via video\.example, \d+ s left/);
    assert.match(ex.stdout, /→ uplink isp2/);
  });

  test("with no new answer and no open connection the address leaves the set after its TTL", async () => {
    const a = HOSTS["video.example"];
    await resolveWritten("lan", ["video.example"]);
    // The kernel's expiry is the reference, not the time of the query: test 1 answered this name
    // a moment ago, and an answer that moves the expiry by less than a second is not written again.
    const e = await entry("dom_video_4", a);
    assert.ok(e, "the answer put the address in the set");
    // TTL 5 s, or what the cache had left of it, with the floor min_ttl 4 s.
    assert.ok(e.timeoutMs >= 4000 && e.timeoutMs <= TTL_S * 1000, `timeout ${e.timeoutMs} ms`);
    // Watch it until it leaves (bounded). No answer and no write: its expiry never moves; seen in
    // its last 1.5 s (by the kernel's clock, whatever the listing took); not gone before it.
    let leastLeft = e.leftMs;
    let goneBy = 0; // when the first listing without it ended
    while (Date.now() < e.latest + 5000) {
      const x = await entry("dom_video_4", a);
      if (!x) {
        goneBy = Date.now();
        break;
      }
      const moved = x.earliest > e.latest + 20 || x.latest < e.earliest - 20;
      assert.ok(!moved, `its expiry moved (written again): ${JSON.stringify({ e, x })}`);
      leastLeft = Math.min(leastLeft, x.leftMs);
      await sleep(100);
    }
    assert.ok(goneBy > 0, "still in the set 5 s after its expiry");
    assert.ok(goneBy >= e.earliest, `gone ${e.earliest - goneBy} ms before its TTL`);
    assert.ok(leastLeft <= 1500, `last seen ${leastLeft} ms before its expiry`);
    // Its short connections closed long ago: the keep set lets it go too (keep: 3s).
    await waitFor("video.example to leave the keep set", async () => !(await inKeep(a)), 6000);
    const b = await connect(a, 24);
    assert.equal(Object.keys(b.bySeen).length, 2, `balanced again: ${JSON.stringify(b.bySeen)}`);
  });

  test("an open connection keeps its address in the rule after the TTL", async () => {
    const [k] = await resolve("lan", ["keep.example"]);
    assert.deepEqual(k?.addresses, [HOSTS["keep.example"]]);
    const holder = await lab.startHolder({
      from: "lan",
      dst: HOSTS["keep.example"],
      port: HOLD,
      intervalMs: 300,
      durationMs: 20_000,
    });
    try {
      assert.equal(holder.connected.greeting, isp2());
      // TTL 5 s and keep 3 s have both passed; the holder's packets refresh the keep set.
      await sleep(TTL_S * 1000 + 4000);
      assert.ok(!(await inDns(HOSTS["keep.example"])), "the DNS entry expired");
      assert.ok(await inKeep(HOSTS["keep.example"]), "the open connection keeps the address");
      const r = await connect(HOSTS["keep.example"]);
      assert.deepEqual(r.bySeen, { [isp2()]: 8 });
    } finally {
      await holder.stop();
    }
    await waitFor(
      "keep.example to leave once its connection closed",
      async () => !(await inKeep(HOSTS["keep.example"])),
      8000,
    );
  });

  test("a cached answer to a second client refreshes the timeout", async () => {
    const a = HOSTS["cached.example"];
    const [first] = await resolveWritten("lan", ["cached.example"]);
    assert.deepEqual(first?.addresses, [a]);
    const before = await entry("dom_video_4", a);
    assert.ok(before, "the first answer put the address in the set");
    await sleep(2500);
    const [second] = await resolveWritten("lan2", ["cached.example"]);
    const ttl = second?.ttls[0] ?? 99;
    assert.ok(ttl < TTL_S, `the second answer came from the cache (TTL ${ttl})`);
    const after = await entry("dom_video_4", a);
    // Written with the first answer's TTL 5 s, written again with the cached answer's (floor 4 s).
    assert.deepEqual([before.timeoutMs, after?.timeoutMs], [TTL_S * 1000, 4000]);
    // Past the first answer's expiry (by the kernel's clock), the second answer keeps it.
    await sleep(Math.max(0, before.latest + 250 - Date.now()));
    assert.ok(await inDns(a), "refreshed by the cached answer");
    await waitFor("cached.example to leave the DNS set", async () => !(await inDns(a)), 6000);
  });

  test("10,000 malformed DNS packets change nothing but a counter", async () => {
    const dropped0 = sum(await metric("nflb_dns_dropped_total"));
    const queries0 = sum(await metric("nflb_dns_queries_total"));
    const sets0 = [...(await members("dom_video_4")).keys()].sort();
    const rcvbuf0 = await rcvbufErrors();
    const r = await lab.exec("lan", toolArgv("dns-client", ["--server", LAN.router4, "--junk", "10000"]), {
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, r.stderr);
    let dropped = dropped0;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && dropped < dropped0 + 10_000) {
      await sleep(200);
      dropped = sum(await metric("nflb_dns_dropped_total"));
    }
    // Every message is counted by nflb, or (a loaded machine) by the kernel's full socket buffer.
    const lost = (await rcvbufErrors()) - rcvbuf0;
    assert.equal(
      dropped - dropped0 + lost,
      10_000,
      `nflb counted ${dropped - dropped0}, the socket buffer lost ${lost}`,
    );
    assert.ok(lost <= 1000, `the socket buffer lost ${lost}`);
    assert.equal(sum(await metric("nflb_dns_queries_total")), queries0, "nothing was forwarded");
    assert.deepEqual([...(await members("dom_video_4")).keys()].sort(), sets0);
    // Still answering, still filling the set.
    const [v] = await resolve("lan", ["video.example"]);
    assert.deepEqual(v?.addresses, [HOSTS["video.example"]]);
    assert.ok(await inDns(HOSTS["video.example"]));
    assert.equal(fx.daemon?.proc.child.exitCode, null);
  });

  test("a reload keeps the domain sets' addresses, and a rule that gains domains gets its own sets", async () => {
    await resolve("lan", ["video.example"]);
    assert.ok(await inDns(HOSTS["video.example"]));
    // A new rule in front of the old one: reordered, the video rule keeps its sets by name.
    await writeFile(fx.file, config(["  - { name: other, domains: [other.example], via: [isp1] }"]));
    const r = await lab.exec("router", [NFLB, "reload", "-c", fx.file], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(await inDns(HOSTS["video.example"]), "the reload kept the answered address");
    const [o] = await resolve("lan", ["other.example"]);
    assert.deepEqual(o?.addresses, [HOSTS["other.example"]]);
    assert.ok((await members("dom_other_4")).has(HOSTS["other.example"]));
    const c = await connect(HOSTS["other.example"]);
    assert.deepEqual(c.bySeen, { [`inet ${lab.uplink(1).router4}`]: 8 });
  });
});
