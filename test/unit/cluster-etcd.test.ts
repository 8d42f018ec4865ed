import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  EtcdClient,
  EtcdError,
  EtcdUnavailableError,
  prefixEnd,
  redactCredentials,
  type FetchLike,
} from "../../src/system/etcd.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** A fetch that records requests and answers from a table of path → response body. */
function fakeFetch(
  answers: Record<string, unknown>,
  calls: { url: string; body: unknown }[] = [],
): FetchLike {
  return async (url, init) => {
    calls.push({ url, body: JSON.parse(init.body) });
    const path = new URL(url).pathname;
    if (!(path in answers)) throw new TypeError("fetch failed");
    const text =
      typeof answers[path] === "string" ? (answers[path] as string) : JSON.stringify(answers[path]);
    const status = path.includes("error") ? 400 : 200;
    return { ok: status === 200, status, text: async () => text, body: new Blob([text]).stream() };
  };
}

describe("etcd gateway client", () => {
  test("prefixEnd bumps the last byte", () => {
    assert.equal(prefixEnd("/a/"), "/a0");
    assert.equal(prefixEnd("abc"), "abd");
  });

  test("range: base64 on the wire, strings and numbers back", async () => {
    const calls: { url: string; body: unknown }[] = [];
    const c = new EtcdClient(["http://e:2379/"], {
      fetch: fakeFetch(
        {
          "/v3/kv/range": {
            header: { revision: "7" },
            kvs: [
              {
                key: b64("/p/x"),
                value: b64("{}"),
                create_revision: "3",
                mod_revision: "6",
                version: "2",
                lease: "99",
              },
            ],
          },
        },
        calls,
      ),
    });
    const r = await c.rangePrefix("/p/");
    assert.equal(r.revision, 7);
    assert.deepEqual(r.kvs, [
      { key: "/p/x", value: "{}", createRevision: 3, modRevision: 6, version: 2, lease: "99" },
    ]);
    assert.deepEqual(calls[0], {
      url: "http://e:2379/v3/kv/range",
      body: { key: b64("/p/"), range_end: b64("/p0") },
    });
  });

  test("txn renders compares and puts with leases", async () => {
    const calls: { url: string; body: unknown }[] = [];
    const c = new EtcdClient(["http://e:2379"], {
      fetch: fakeFetch({ "/v3/kv/txn": { header: { revision: "9" }, succeeded: true } }, calls),
    });
    const r = await c.txn({
      compare: [{ key: "/h/", rangeEnd: "/h0", target: "mod", result: "less", modRevision: 8 }],
      success: [{ put: { key: "/h/a", value: "v", lease: "123" } }],
    });
    assert.deepEqual(r, { succeeded: true, revision: 9 });
    assert.deepEqual(calls[0]?.body, {
      compare: [{ key: b64("/h/"), range_end: b64("/h0"), result: "LESS", target: "MOD", mod_revision: "8" }],
      success: [{ request_put: { key: b64("/h/a"), value: b64("v"), lease: "123" } }],
      failure: [],
    });
  });

  test("leases: grant, keep-alive (0 = gone), ids stay strings", async () => {
    const c = new EtcdClient(["http://e:2379"], {
      fetch: fakeFetch({
        "/v3/lease/grant": { ID: "7587869443071410000", TTL: "2" },
        "/v3/lease/keepalive": { result: { ID: "7587869443071410000" } },
      }),
    });
    assert.deepEqual(await c.leaseGrant(1.5), { id: "7587869443071410000", ttl: 2 });
    assert.equal(await c.leaseKeepAlive("7587869443071410000"), 0);
  });

  test("unreachable endpoints and etcd errors are told apart; the next endpoint is tried", async () => {
    const calls: { url: string; body: unknown }[] = [];
    const c = new EtcdClient(["http://down:2379", "http://up:2379"], {
      fetch: async (url, init) => {
        calls.push({ url, body: init.body });
        if (url.startsWith("http://down")) throw new TypeError("fetch failed");
        return {
          ok: false,
          status: 400,
          text: async () => '{"error":"etcdserver: bad","message":"etcdserver: bad"}',
          body: null,
        };
      },
    });
    await assert.rejects(c.put("/k", "v"), (e: unknown) => e instanceof EtcdError && /bad/.test(e.message));
    assert.deepEqual(
      calls.map((x) => new URL(x.url).host),
      ["down:2379", "up:2379"],
    );
    const dead = new EtcdClient(["http://down:2379"], { fetch: fakeFetch({}) });
    await assert.rejects(dead.get("/k"), EtcdUnavailableError);
  });

  test("watch parses the streamed events line by line", async () => {
    const lines = [
      { result: { header: { revision: "5" }, created: true } },
      {
        result: {
          header: { revision: "6" },
          events: [{ kv: { key: b64("/p/a"), value: b64("1"), mod_revision: "6" } }],
        },
      },
      {
        result: {
          header: { revision: "7" },
          events: [{ type: "DELETE", kv: { key: b64("/p/a"), mod_revision: "7" } }],
        },
      },
    ];
    const text = lines.map((l) => JSON.stringify(l)).join("\n") + "\n";
    const c = new EtcdClient(["http://e:2379"], { fetch: fakeFetch({ "/v3/watch": text }) });
    const seen: string[] = [];
    await c.watch("/p/", prefixEnd("/p/"), {
      signal: new AbortController().signal,
      onEvents: (evs, rev) => seen.push(`${rev}:${evs.map((e) => `${e.type} ${e.kv.key}`).join(",")}`),
    });
    assert.deepEqual(seen, ["5:", "6:put /p/a", "7:delete /p/a"]);
  });

  test("auth: one token for concurrent calls, sent as Authorization; renewed when etcd rejects it", async () => {
    const seen: { path: string; auth: string | undefined }[] = [];
    let tokens = 0;
    let valid = "";
    const c = new EtcdClient(["https://e:2379"], {
      auth: { username: "nflb", password: "pw-secret" },
      fetch: async (url, init) => {
        const path = new URL(url).pathname;
        const auth = init.headers?.authorization;
        seen.push({ path, auth });
        let status = 200;
        let out: unknown = { header: { revision: "3" }, kvs: [] };
        if (path === "/v3/auth/authenticate") {
          assert.deepEqual(JSON.parse(init.body), { name: "nflb", password: "pw-secret" });
          valid = `tok${++tokens}`;
          out = { token: valid };
        } else if (auth !== valid) {
          status = 401;
          out = {
            error: "etcdserver: invalid auth token",
            message: "etcdserver: invalid auth token",
            code: 16,
          };
        }
        const t = JSON.stringify(out);
        return { ok: status === 200, status, text: async () => t, body: null };
      },
    });
    await Promise.all([c.get("/a"), c.get("/b"), c.get("/c")]);
    assert.equal(tokens, 1, "one authenticate for three concurrent calls");
    assert.deepEqual(
      seen.filter((s) => s.path === "/v3/kv/range").map((s) => s.auth),
      ["tok1", "tok1", "tok1"],
    );
    valid = "expired-elsewhere";
    await c.get("/d");
    assert.equal(tokens, 2, "a rejected token is replaced");
    assert.equal(seen.at(-1)?.auth, "tok2");
  });

  test("credentials in URLs never reach a message", async () => {
    assert.equal(
      redactCredentials("etcd unreachable (https://user:pa55@10.0.0.5:2379, http://u@h:1): x"),
      "etcd unreachable (https://***@10.0.0.5:2379, http://***@h:1): x",
    );
    const dead = new EtcdClient(["http://root:hunter2@down:2379"], { fetch: fakeFetch({}) });
    await assert.rejects(
      dead.get("/k"),
      (e: Error) => !e.message.includes("hunter2") && /\*\*\*@down/.test(e.message),
    );
    assert.throws(
      () => new EtcdClient(["ftp://u:hunter2@x/"]),
      (e: Error) => !e.message.includes("hunter2"),
    );
  });

  test(
    "a request parked on a dead connection ends at its time limit, even when the transport ignores the abort",
    { timeout: 10_000 },
    async () => {
      // Models what a cut link leaves: a connect in SYN back-off, or a pooled socket in
      // retransmit, that never answers and (in the worst case) never notices the abort.
      const stuck: FetchLike = () => new Promise(() => undefined);
      const c = new EtcdClient(["http://e:2379"], { fetch: stuck, timeoutMs: 50 });
      await assert.rejects(c.leaseKeepAlive("7", 50), (e: unknown) => {
        assert.ok(e instanceof EtcdUnavailableError);
        assert.match(e.message, /timeout/);
        return true;
      });
      await assert.rejects(c.get("/k"), EtcdUnavailableError);
      // Headers arrived, the body never ends: bounded as well.
      const stalled: FetchLike = async () => ({
        ok: true,
        status: 200,
        body: null,
        text: () => new Promise<string>(() => undefined),
      });
      const d = new EtcdClient(["http://e:2379"], { fetch: stalled, timeoutMs: 50 });
      await assert.rejects(d.put("/k", "v"), EtcdUnavailableError);
    },
  );

  test(
    "a watch whose open never answers fails instead of waiting for good",
    { timeout: 10_000 },
    async () => {
      const c = new EtcdClient(["http://e:2379"], {
        fetch: () => new Promise(() => undefined),
        timeoutMs: 50,
        watchOpenTimeoutMs: 100,
      });
      await assert.rejects(
        c.watch("/p/", prefixEnd("/p/"), { signal: new AbortController().signal, onEvents: () => undefined }),
        EtcdUnavailableError,
      );
    },
  );
});
