// The agent against an in-memory etcd (the gateway's JSON, enough of it) and a fake host: what
// it joins, what it takes from a push, and what it refuses. No sockets, no kernel.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { after, describe, test } from "node:test";
import { ClusterAgent } from "../../src/cluster/agent.ts";
import type { ClusterHost } from "../../src/cluster/host.ts";
import { configKey } from "../../src/cluster/keys.ts";
import { pushConfig } from "../../src/cluster/shared-config.ts";
import { signConfig } from "../../src/cluster/signing.ts";
import { parseConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { EtcdClient, type FetchLike } from "../../src/system/etcd.ts";
import { until } from "../../testkit/until.ts";

interface Kv {
  value: string;
  create: number;
  mod: number;
  version: number;
  lease: string;
}

interface Link {
  cut: boolean;
  loseAnswer?: (path: string, body: string) => boolean;
}

/** One etcd: keys as latin1 strings (what the client's range ends are), revisions, leases. */
class FakeEtcd {
  readonly kvs = new Map<string, Kv>();
  rev = 1;
  /** Watch streams stay open and silent until aborted (a stream a cut left behind looks so). */
  silentWatch = false;
  watchOpens = 0;
  private leaseSeq = 100;
  private readonly leases = new Set<string>();

  private static dec = (s: unknown) => Buffer.from(String(s ?? ""), "base64").toString("latin1");
  private static enc = (s: string) => Buffer.from(s, "latin1").toString("base64");

  private inRange(start: string, end: string | null) {
    return [...this.kvs].filter(([k]) =>
      end === null ? k === start : k >= start && (end === "\0" || k < end),
    );
  }

  private kvOut([k, v]: [string, Kv]) {
    return {
      key: FakeEtcd.enc(k),
      value: Buffer.from(v.value, "utf8").toString("base64"),
      create_revision: String(v.create),
      mod_revision: String(v.mod),
      version: String(v.version),
      lease: v.lease,
    };
  }

  private put(k: string, valueB64: unknown, lease?: unknown) {
    const old = this.kvs.get(k);
    this.rev++;
    this.kvs.set(k, {
      value: Buffer.from(String(valueB64 ?? ""), "base64").toString("utf8"),
      create: old?.create ?? this.rev,
      mod: this.rev,
      version: (old?.version ?? 0) + 1,
      lease: lease ? String(lease) : "0",
    });
  }

  private compare(c: Record<string, string>): boolean {
    const rows = this.inRange(FakeEtcd.dec(c.key), c.range_end ? FakeEtcd.dec(c.range_end) : null);
    const cmp = (a: number, b: number) =>
      c.result === "EQUAL" ? a === b : c.result === "LESS" ? a < b : a > b;
    const empty = { create: 0, mod: 0 } as Kv;
    const list = rows.length ? rows.map(([, v]) => v) : [empty];
    if (c.target === "MOD") return list.every((v) => cmp(v.mod, Number(c.mod_revision)));
    if (c.target === "CREATE") return list.every((v) => cmp(v.create, Number(c.create_revision)));
    return rows.length > 0 && rows.every(([, v]) => Buffer.from(v.value).toString("base64") === c.value);
  }

  readonly fetch: FetchLike = async (url, init) => {
    const path = new URL(url).pathname;
    const b = JSON.parse(init.body) as Record<string, unknown>;
    const header = () => ({ revision: String(this.rev) });
    let out: unknown;
    if (path === "/v3/kv/range") {
      const rows = this.inRange(FakeEtcd.dec(b.key), b.range_end ? FakeEtcd.dec(b.range_end) : null);
      out = { header: header(), kvs: rows.map((r) => this.kvOut(r)) };
    } else if (path === "/v3/kv/put") {
      this.put(FakeEtcd.dec(b.key), b.value, b.lease);
      out = { header: header() };
    } else if (path === "/v3/kv/txn") {
      const ok = (b.compare as Record<string, string>[]).every((c) => this.compare(c));
      for (const op of (ok ? b.success : b.failure) as Record<string, Record<string, string>>[]) {
        const p = op.request_put;
        if (p) this.put(FakeEtcd.dec(p.key), p.value, p.lease);
        const d = op.request_delete_range;
        if (d)
          for (const [k] of this.inRange(FakeEtcd.dec(d.key), d.range_end ? FakeEtcd.dec(d.range_end) : null))
            this.kvs.delete(k);
      }
      out = { header: header(), succeeded: ok };
    } else if (path === "/v3/lease/grant") {
      const id = String(++this.leaseSeq);
      this.leases.add(id);
      out = { ID: id, TTL: String(b.TTL) };
    } else if (path === "/v3/lease/keepalive") {
      out = { result: this.leases.has(String(b.ID)) ? { ID: b.ID, TTL: "1" } : { ID: b.ID } };
    } else if (path === "/v3/lease/revoke") {
      this.leases.delete(String(b.ID));
      for (const [k, v] of this.kvs) if (v.lease === String(b.ID)) this.kvs.delete(k);
      out = {};
    } else if (path === "/v3/watch") {
      this.watchOpens++;
      if (this.silentWatch) {
        const { signal } = init;
        const body = new ReadableStream<Uint8Array>({
          start: (c) => signal.addEventListener("abort", () => c.error(signal.reason), { once: true }),
        });
        return { ok: true, status: 200, text: async () => "", body };
      }
      // A stream that ends at once: the agent re-reads on its tick.
      return { ok: true, status: 200, text: async () => "", body: new Blob([]).stream() };
    } else throw new TypeError(`fake etcd: ${path}`);
    const t = JSON.stringify(out);
    return { ok: true, status: 200, text: async () => t, body: null };
  };

  /** etcd's lessor expiring a lease: the lease and every key attached to it are gone. */
  expire(id: string) {
    this.leases.delete(id);
    for (const [k, v] of this.kvs) if (v.lease === id) this.kvs.delete(k);
    this.rev++;
  }

  /**
   * A client; with `link`, every request made while `link.cut` never answers and ignores its
   * abort (a connect in SYN back-off or a socket in retransmit behind a dropped link), and a
   * request `link.loseAnswer` picks is applied but its answer never comes (late past the limit).
   */
  client(link?: Link) {
    const fetch: FetchLike = async (url, init) => {
      if (link?.cut) return new Promise(() => undefined);
      const res = await this.fetch(url, init);
      if (link?.loseAnswer?.(new URL(url).pathname, init.body)) return new Promise(() => undefined);
      return res;
    };
    return new EtcdClient(["http://etcd:2379"], { fetch, timeoutMs: 500 });
  }
}

/** A kernel: the owned buckets lapse by themselves when their timeout runs out (the fence). */
class FakeHost implements ClusterHost {
  private told: number[] = [];
  private until = 0;
  everOwned = 0;
  setups: Config[] = [];
  get owned(): number[] {
    return performance.now() < this.until ? this.told : [];
  }
  async setup(config: Config): Promise<void> {
    this.setups.push(config);
  }
  async setOwned(o: { buckets: readonly number[]; timeoutMs: number }): Promise<void> {
    this.told = o.timeoutMs > 0 ? [...o.buckets] : [];
    this.until = performance.now() + o.timeoutMs;
    this.everOwned = Math.max(this.everOwned, this.told.length);
  }
  async facts() {
    return { interfaces: new Map([["eth0", { name: "eth0", up: true, addresses: [] }]]) };
  }
}

const config = (node: string, buckets: number, extra = "") =>
  parseConfig(`version: 1
cluster:
  name: lab
  node: ${node}
  vip: 192.0.2.2
  interface: eth0
  buckets: ${buckets}
  lease: 1s
${extra}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("cluster agent", () => {
  const agents: ClusterAgent[] = [];
  after(() => Promise.all(agents.map((a) => a.stop({ leave: false }))));
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");

  function agent(etcd: FakeEtcd, node: string, buckets: number, extra = "", link?: Link) {
    const host = new FakeHost();
    const a = new ClusterAgent({
      config: config(node, buckets, extra),
      host,
      etcd: etcd.client(link),
      address: `192.0.2.1${agents.length + 1}`,
      sharedKey: null,
      pushKey: publicKey,
    });
    const logs: string[] = [];
    a.on("log", (m) => logs.push(m));
    agents.push(a);
    return { a, host, logs };
  }

  test("a member with other buckets refuses to join and serves nothing; the first keeps all; once it is gone, the cluster is re-created", async () => {
    const etcd = new FakeEtcd();
    const one = agent(etcd, "node1", 8);
    await one.a.start();
    await until("node1 owns all 8", () => one.host.owned.length === 8);
    assert.deepEqual(JSON.parse(etcd.kvs.get("/nflb/cluster/lab/params")!.value), {
      buckets: 8,
      hash: "source",
    });
    const assignment = () => etcd.kvs.get("/nflb/cluster/lab/assignment")!;
    const modBefore = assignment().mod;

    const two = agent(etcd, "node2", 16);
    await two.a.start();
    await until("node2 reports the mismatch", () => two.a.snapshot().error !== null);
    await sleep(1500);
    const s = two.a.snapshot();
    assert.match(
      s.error ?? "",
      /refused to join cluster lab: it uses 8 buckets, hash source, this node has 16 buckets/,
    );
    assert.equal(s.buckets_owned, 0);
    assert.equal(two.host.everOwned, 0, "node2 never accepted a bucket");
    assert.ok(two.logs.some((l) => /refused to join/.test(l)));
    assert.equal(etcd.kvs.has("/nflb/cluster/lab/members/node2"), false, "node2 did not register");
    assert.equal(one.host.owned.length, 8, "node1 keeps serving every bucket");
    assert.equal(assignment().mod, modBefore, "the assignment was not rewritten");
    assert.deepEqual(JSON.parse(assignment().value).members, ["node1"]);

    // Every 8-bucket member gone: the 16-bucket node re-creates the cluster and takes all 16.
    await one.a.stop({ leave: true });
    await until("node2 joins once nobody runs 8 buckets", () => two.host.owned.length === 16);
    assert.equal(two.a.snapshot().error, null);
    assert.deepEqual(JSON.parse(etcd.kvs.get("/nflb/cluster/lab/params")!.value), {
      buckets: 16,
      hash: "source",
    });
    assert.ok(two.logs.some((l) => /no member runs: cluster lab re-created with 16 buckets/.test(l)));
  });

  test("pushes: only signed documents with shared keys are run; on_change never comes from etcd", async () => {
    const etcd = new FakeEtcd();
    const local = "on_change: [/usr/local/bin/local-hook]\n";
    const one = agent(etcd, "node1", 8, local);
    await one.a.start();
    await until("node1 owns its buckets", () => one.host.owned.length === 8);
    const versions: number[] = [];
    const refused: { version: number; message: string }[] = [];
    one.a.on("config", (_c, v) => versions.push(v));
    one.a.on("config-refused", (r) => refused.push(r));
    const doc = (extra = "") =>
      `version: 1\ncluster:\n  name: lab\n  vip: 192.0.2.2\n  buckets: 8\n  lease: 1s\n${extra}`;
    const put = async (version: number, text: string, signature?: string) => {
      const rec = { version, sha256: "", text, pushed_at: "", ...(signature ? { signature } : {}) };
      await etcd.client().put(configKey("lab"), JSON.stringify(rec));
    };
    const waitRefused = (v: number) => until(`v${v} refused`, () => refused.some((r) => r.version === v));

    // A hook written straight into etcd, signed with the right key: still not a shared key.
    const hook = doc("on_change: [/bin/sh, -c, 'touch /tmp/pwned']\n");
    await put(1, hook, signConfig(privateKey, "lab", 1, hook));
    await waitRefused(1);
    assert.match(refused.at(-1)!.message, /not shared through etcd: on_change/);
    // Unsigned, signed by another key, or signed for another version.
    await put(2, doc());
    await waitRefused(2);
    assert.match(refused.at(-1)!.message, /unsigned/);
    const other = generateKeyPairSync("ed25519").privateKey;
    await put(3, doc(), signConfig(other, "lab", 3, doc()));
    await waitRefused(3);
    assert.match(refused.at(-1)!.message, /bad signature/);
    await put(4, doc(), signConfig(privateKey, "lab", 3, doc()));
    await waitRefused(4);
    assert.match(refused.at(-1)!.message, /bad signature/);
    assert.equal(versions.length, 0);

    // A proper push runs, under the node's own hook.
    const rec = await pushConfig(etcd.client(), "lab", doc().replace("1s", "2s"), privateKey);
    await until("the signed push runs", () => versions.includes(rec.version));
    assert.deepEqual(one.a.config.on_change, ["/usr/local/bin/local-hook"]);
    assert.equal(one.a.config.cluster?.lease, 2000);
    for (const c of one.host.setups) assert.deepEqual(c.on_change, ["/usr/local/bin/local-hook"]);
    // A replay of an older (validly signed) version is refused.
    const old = doc();
    await put(rec.version + 1, old, signConfig(privateKey, "lab", rec.version + 1, old));
    await until("next runs", () => versions.includes(rec.version + 1));
    await put(
      rec.version,
      doc().replace("1s", "2s"),
      signConfig(privateKey, "lab", rec.version, doc().replace("1s", "2s")),
    );
    await waitRefused(rec.version);
    assert.match(refused.at(-1)!.message, /older than the running/);
    assert.equal(one.host.owned.length, 8, "refusals never touched the buckets");
  });

  test("cut off from etcd until its lease expired: it fences itself, and once the link is back it registers again, owns its share and watches anew", async () => {
    const etcd = new FakeEtcd();
    etcd.silentWatch = true;
    const link = { cut: false };
    const one = agent(etcd, "node1", 8);
    const two = agent(etcd, "node2", 8, "", link);
    await one.a.start();
    await two.a.start();
    const shared = () => one.host.owned.length + two.host.owned.length === 8 && two.host.owned.length > 0;
    await until("both members hold a share", shared);
    const member = () => etcd.kvs.get("/nflb/cluster/lab/members/node2");
    const lease = (JSON.parse(member()!.value) as { lease: string }).lease;
    const opens = etcd.watchOpens;

    // Every request of node2 now hangs, deaf to aborts; etcd expires its lease meanwhile.
    link.cut = true;
    await until("node2 fences itself", () => two.host.owned.length === 0);
    etcd.expire(lease);
    await until("node1 takes every bucket", () => one.host.owned.length === 8);
    assert.equal(two.a.snapshot().mode, "fenced", "node2's steps are stuck behind a call that never ended");

    link.cut = false;
    await until("node2 registers again and owns its share", shared, 10_000);
    assert.notEqual((JSON.parse(member()!.value) as { lease: string }).lease, lease, "a new lease");
    assert.ok(two.logs.some((l) => /lease expired: dropping every bucket and registering again/.test(l)));
    // The watch stream that lived through the cut (silent for good) was replaced.
    await until("node2 opened a new watch", () => etcd.watchOpens > opens, 5_000);
  });

  test("a claim etcd applied but whose answer was lost is taken as won: its buckets are served, not left in etcd as nobody's", async () => {
    const etcd = new FakeEtcd();
    const mine = Buffer.from("/nflb/cluster/lab/holds/node2", "latin1").toString("base64");
    let lost = 0;
    const link: Link = {
      cut: false,
      // node2's first claim (a txn putting its holds) reaches etcd; the answer does not come back.
      loseAnswer: (path, body) => path === "/v3/kv/txn" && body.includes(mine) && lost++ === 0,
    };
    const one = agent(etcd, "node1", 8);
    await one.a.start();
    await until("node1 owns all 8", () => one.host.owned.length === 8);
    const two = agent(etcd, "node2", 8, "", link);
    await two.a.start();
    await until(
      "both members serve a share",
      () => one.host.owned.length + two.host.owned.length === 8 && two.host.owned.length > 0,
      10_000,
    );
    assert.equal(lost, 1, "the claim's answer was lost once");
    assert.ok(two.logs.some((l) => /etcd had recorded the claim/.test(l)));
  });
});
