import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError } from "../../src/config/issues.ts";
import { parseConfig } from "../../src/config/load.ts";

const cfg = (etcdLines: string) => `version: 1
cluster:
  name: web
  node: a
  vip: 192.0.2.2
  interface: eth0
${etcdLines}`;

function refusal(text: string): string {
  try {
    parseConfig(text, "nflb.yaml");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.message;
  }
  assert.fail("accepted");
}

describe("cluster config: etcd endpoints, TLS, credentials and keys", () => {
  test("etcd endpoints are http:// or https://, named with their path and line", () => {
    assert.match(
      refusal(cfg("  etcd: [ftp://192.0.2.5:2379]\n")),
      /cluster\.etcd\[0\] \(line 7.*http:\/\/ or https:\/\/ URLs \(got ftp:\/\/\)/,
    );
    assert.match(refusal(cfg("  etcd: [not a url]\n")), /cluster\.etcd\[0\].*not a URL/);
    assert.match(refusal(cfg("  etcd: [http://192.0.2.5:2379/v3?x=1]\n")), /scheme, host and port only/);
  });

  test("credentials in a URL are refused and never echoed; passwords only from a file", () => {
    const m = refusal(cfg("  etcd: [https://root:hunter2@192.0.2.5:2379]\n"));
    assert.match(m, /remove the user name and password from the URL.*use cluster\.etcd_auth/);
    assert.doesNotMatch(m, /hunter2/);
    assert.match(
      refusal(cfg("  etcd: [https://192.0.2.5:2379]\n  etcd_auth: { username: nflb, password: hunter2 }\n")),
      /unknown key password/,
    );
  });

  test("TLS and auth settings: absolute paths, cert with key, https endpoints", () => {
    const ok = parseConfig(
      cfg(`  etcd: [https://192.0.2.5:2379]
  etcd_tls: { ca: /etc/nflb/ca.pem, cert: /etc/nflb/c.pem, key: /etc/nflb/c.key }
  etcd_auth: { username: nflb, password_file: /etc/nflb/etcd.pw }
  key_file: /etc/nflb/cluster.key
  push_public_key: /etc/nflb/push.pub
`),
    );
    assert.equal(ok.cluster?.etcd_auth?.password_file, "/etc/nflb/etcd.pw");
    assert.match(refusal(cfg("  key_file: cluster.key\n")), /cluster\.key_file.*absolute file path/);
    assert.match(refusal(cfg("  key_file: /etc/../tmp/k\n")), /absolute file path/);
    assert.match(
      refusal(cfg("  etcd: [https://192.0.2.5:2379]\n  etcd_tls: { cert: /a.pem }\n")),
      /cert and key go together/,
    );
    assert.match(
      refusal(cfg("  etcd: [http://192.0.2.5:2379]\n  etcd_tls: { ca: /ca.pem }\n")),
      /cluster\.etcd_tls.*needs https/,
    );
  });
});
