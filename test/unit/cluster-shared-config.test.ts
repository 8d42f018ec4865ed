import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import {
  MAX_PUSHED_BYTES,
  pushConfig,
  sharedDocument,
  validateShared,
} from "../../src/cluster/shared-config.ts";
import { verifyConfig } from "../../src/cluster/signing.ts";
import { EtcdClient, type FetchLike } from "../../src/system/etcd.ts";

/** A shared document as `nflb cluster push` writes it. */
const shared = (extra = "", buckets = 256, clusterExtra = "") => `version: 1
cluster:
  name: web
  vip: 192.0.2.2
  buckets: ${buckets}
  lease: 2s
${clusterExtra}${extra}`;

const running = parseConfig(`version: 1
cluster:
  name: web
  node: a
  vip: 192.0.2.2
  interface: eth0
  buckets: 256
  etcd: [http://192.0.2.250:2379]
api:
  listen: 127.0.0.1:9110
on_change: [/usr/local/bin/notify]
`);
const facts = { interfaces: new Map([["eth0", { name: "eth0", up: true, addresses: [] }]]) };
const services = `services:
  web:
    listen: 192.0.2.2:80
    backends: [{ address: 192.0.2.20:8080 }]
`;

describe("shared cluster config", () => {
  test("a valid push replaces services and the cluster's tuning; the node keeps its own settings", () => {
    const v = validateShared(
      shared(services).replace("vip: 192.0.2.2", "vip: 192.0.2.3"),
      running,
      "a",
      facts,
    );
    assert.ok(v.ok, v.ok ? "" : v.message);
    assert.equal(v.config.cluster?.node, "a");
    assert.deepEqual(v.config.cluster?.vip, ["192.0.2.3"]);
    assert.deepEqual(v.config.cluster?.etcd, ["http://192.0.2.250:2379"]);
    assert.equal(v.config.cluster?.interface, "eth0");
    assert.deepEqual(v.config.on_change, ["/usr/local/bin/notify"]);
    assert.equal(v.config.api.listen, "127.0.0.1:9110");
    assert.deepEqual(Object.keys(v.config.services ?? {}), ["web"]);
  });

  test("hooks, API settings, etcd endpoints, credentials and the node's identity are never taken", () => {
    const cases = [
      [shared("on_change: [/bin/sh, -c, 'id > /tmp/pwned']\n"), /not shared.*on_change/],
      [shared("api:\n  listen: 0.0.0.0:9110\n  token: aaaaaaaaaa\n"), /not shared.*api/],
      [shared("", 256, "  etcd: [http://203.0.113.9:2379]\n"), /not shared.*cluster\.etcd/],
      [shared("", 256, "  node: b\n"), /not shared.*cluster\.node/],
      [shared("", 256, "  interface: eth1\n"), /not shared.*cluster\.interface/],
      [shared("", 256, "  etcd_auth: { username: x, password_file: /tmp/p }\n"), /cluster\.etcd_auth/],
      [shared("", 256, "  key_file: /tmp/k\n"), /cluster\.key_file/],
      [shared("", 256, "  push_public_key: /tmp/k.pub\n"), /cluster\.push_public_key/],
      [shared("uplinks:\n  a: { interface: eth0 }\n"), /not shared.*uplinks/],
    ] as const;
    for (const [t, re] of cases) {
      const v = validateShared(t, running, "a", facts);
      assert.ok(!v.ok && re.test(v.message), v.ok ? `accepted: ${t}` : v.message);
    }
  });

  test("the same schema as a file, with its lines; identity changes and oversize refused", () => {
    const bad = [
      [
        shared("services:\n  web:\n    listen: 192.0.2.2:80\n    backends: []\n"),
        /services\.web\.backends \(line 10/,
      ],
      ["version: 1\ncluster: [", /YAML/],
      [shared("", 128), /cluster\.buckets differs/],
      [shared().replace("2s", "soon"), /cluster\.lease.*duration/],
      [`version: 1\nservices: {}\n`, /cluster/],
      ["- a\n- b\n", /not a mapping/],
      [shared("# " + "x".repeat(MAX_PUSHED_BYTES) + "\n"), /larger than/],
    ] as const;
    for (const [t, re] of bad) {
      const v = validateShared(t, running, "a", facts);
      assert.ok(!v.ok && re.test(v.message), v.ok ? "accepted" : v.message);
    }
    const v = validateShared(shared(), running, "a", { interfaces: new Map() });
    assert.ok(!v.ok && /no interface eth0/.test(v.message));
  });

  test("push extracts the shared part of a node's file and names what stayed behind", () => {
    const file = `version: 1
cluster:
  name: web
  node: a
  vip: 192.0.2.2
  interface: eth0
  etcd: [http://192.0.2.250:2379]
  lease: 3s
${services}api:
  listen: 127.0.0.1:9119
on_change: [/bin/true]
`;
    const doc = sharedDocument(file);
    assert.deepEqual(doc.left.sort(), [
      "api",
      "cluster.etcd",
      "cluster.interface",
      "cluster.node",
      "on_change",
    ]);
    assert.doesNotMatch(doc.text, /on_change|api|etcd|node|interface/);
    const v = validateShared(doc.text, running, "a", facts);
    assert.ok(v.ok, v.ok ? "" : v.message);
    assert.equal(v.config.cluster?.lease, 3000);
  });

  test("push stores the next version, signed for it, with compare-and-swap", async () => {
    const store = new Map<string, { value: string; mod: number }>();
    let rev = 1;
    const dec = (s: string) => Buffer.from(s, "base64").toString("latin1");
    const fetch: FetchLike = async (url, init) => {
      const body = JSON.parse(init.body) as Record<string, unknown>;
      const path = new URL(url).pathname;
      let out: unknown = {};
      if (path === "/v3/kv/range") {
        const start = dec(body.key as string);
        const end = body.range_end ? dec(body.range_end as string) : null;
        const kvs = [...store]
          .filter(([k]) => (end === null ? k === start : k >= start && k < end))
          .map(([k, kv]) => ({
            key: Buffer.from(k).toString("base64"),
            value: Buffer.from(kv.value).toString("base64"),
            mod_revision: String(kv.mod),
          }));
        out = { header: { revision: String(rev) }, kvs };
      } else if (path === "/v3/kv/txn") {
        const cmp = (body.compare as { key: string; mod_revision: string }[])[0]!;
        const key = dec(cmp.key);
        const ok = (store.get(key)?.mod ?? 0) === Number(cmp.mod_revision);
        if (ok) {
          const put = (body.success as { request_put: { value: string } }[])[0]!.request_put;
          store.set(key, { value: Buffer.from(put.value, "base64").toString(), mod: ++rev });
        }
        out = { header: { revision: String(rev) }, succeeded: ok };
      }
      const t = JSON.stringify(out);
      return { ok: true, status: 200, text: async () => t, body: null };
    };
    const etcd = new EtcdClient(["http://e:2379"], { fetch });
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    assert.equal((await pushConfig(etcd, "web", "a", privateKey)).version, 1);
    const second = await pushConfig(etcd, "web", "b", privateKey);
    assert.equal(second.version, 2);
    assert.equal(second.text, "b");
    assert.ok(verifyConfig(publicKey, "web", 2, "b", second.signature));
    assert.equal(JSON.parse(store.get("/nflb/cluster/web/config")!.value).version, 2);
    // A member that ran v7 (the key was garbled since): the next push is past it.
    store.set("/nflb/cluster/web/members/a", {
      value: JSON.stringify({
        node: "a",
        address: "192.0.2.11",
        lease: "1",
        config_version: 7,
        config_error: null,
        started_at: "",
      }),
      mod: ++rev,
    });
    store.set("/nflb/cluster/web/config", { value: "garbage", mod: ++rev });
    assert.equal((await pushConfig(etcd, "web", "c", privateKey)).version, 8);
  });
});
