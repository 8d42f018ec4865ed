import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import { pushConfig, validateShared } from "../../src/cluster/shared-config.ts";
import { EtcdClient, type FetchLike } from "../../src/system/etcd.ts";

const text = (extra = "", buckets = 256) => `version: 1
cluster:
  name: web
  node: pusher
  vip: 192.0.2.2
  interface: eth0
  buckets: ${buckets}
${extra}`;
const running = parseConfig(text().replace("pusher", "a"));
const facts = { interfaces: new Map([["eth0", { name: "eth0", up: true, addresses: [] }]]) };

describe("shared cluster config", () => {
  test("a valid push runs under this node's own name", () => {
    const v = validateShared(text("api:\n  listen: 127.0.0.1:9119"), running, "a", facts);
    assert.ok(v.ok);
    assert.equal(v.config.cluster?.node, "a");
    assert.equal(v.config.api.listen, "127.0.0.1:9119");
  });

  test("broken YAML, unknown keys, identity changes and missing interfaces are refused", () => {
    const bad = [
      [text("cluster_typo: 1"), /unknown key/],
      ["version: 1\ncluster: [", /YAML/],
      [text("", 128), /cluster\.buckets differs/],
      ["version: 1\nuplinks:\n  a: { interface: eth0 }\n", /no `cluster` section/],
    ] as const;
    for (const [t, re] of bad) {
      const v = validateShared(t, running, "a", facts);
      assert.ok(!v.ok && re.test(v.message), v.ok ? "accepted" : v.message);
    }
    const v = validateShared(text(), running, "a", { interfaces: new Map() });
    assert.ok(!v.ok && /no interface eth0/.test(v.message));
  });

  test("push stores the next version with compare-and-swap", async () => {
    const store = new Map<string, { value: string; mod: number }>();
    let rev = 1;
    const fetch: FetchLike = async (url, init) => {
      const body = JSON.parse(init.body) as Record<string, unknown>;
      const path = new URL(url).pathname;
      let out: unknown = {};
      if (path === "/v3/kv/range") {
        const key = Buffer.from(body.key as string, "base64").toString();
        const kv = store.get(key);
        out = {
          header: { revision: String(rev) },
          kvs: kv
            ? [
                {
                  key: body.key,
                  value: Buffer.from(kv.value).toString("base64"),
                  mod_revision: String(kv.mod),
                },
              ]
            : [],
        };
      } else if (path === "/v3/kv/txn") {
        const cmp = (body.compare as { key: string; mod_revision: string }[])[0]!;
        const key = Buffer.from(cmp.key, "base64").toString();
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
    assert.equal((await pushConfig(etcd, "web", "a")).version, 1);
    const second = await pushConfig(etcd, "web", "b");
    assert.equal(second.version, 2);
    assert.equal(second.text, "b");
    assert.equal(JSON.parse(store.get("/nflb/cluster/web/config")!.value).version, 2);
  });
});
