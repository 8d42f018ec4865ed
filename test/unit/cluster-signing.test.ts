import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { after, describe, test } from "node:test";
import {
  etcdOptions,
  readPushPublicKey,
  readPushSigningKey,
  readSharedKey,
} from "../../src/cluster/secrets.ts";
import { signConfig, verifyConfig } from "../../src/cluster/signing.ts";
import type { ClusterConfig } from "../../src/config/schema.ts";

const dir = await mkdtemp(`${tmpdir()}/nflb-signing-`);
after(() => rm(dir, { recursive: true, force: true }));

async function file(name: string, text: string | Buffer, mode: number): Promise<string> {
  const p = `${dir}/${name}`;
  await writeFile(p, text);
  await chmod(p, mode);
  return p;
}

describe("pushed config signatures", () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");

  test("verifies for its own cluster, version and text only", () => {
    const sig = signConfig(privateKey, "web", 3, "version: 1\n");
    assert.ok(verifyConfig(publicKey, "web", 3, "version: 1\n", sig));
    assert.ok(!verifyConfig(publicKey, "web", 4, "version: 1\n", sig), "replayed under a newer version");
    assert.ok(!verifyConfig(publicKey, "db", 3, "version: 1\n", sig), "replayed into another cluster");
    assert.ok(!verifyConfig(publicKey, "web", 3, "version: 1\non_change: [x]\n", sig), "text changed");
    assert.ok(!verifyConfig(publicKey, "web", 3, "version: 1\n", undefined), "unsigned");
    assert.ok(!verifyConfig(publicKey, "web", 3, "version: 1\n", "AAAA"), "garbage");
    const other = generateKeyPairSync("ed25519");
    assert.ok(!verifyConfig(other.publicKey, "web", 3, "version: 1\n", sig), "another key");
  });

  test("key files: secrets must not be world-readable; keys must be Ed25519", async () => {
    const pem = privateKey.export({ type: "pkcs8", format: "pem" });
    const pub = publicKey.export({ type: "spki", format: "pem" });
    await assert.rejects(
      readPushSigningKey(await file("open.key", pem, 0o644)),
      /readable by every user.*chmod 600/,
    );
    assert.equal((await readPushSigningKey(await file("ok.key", pem, 0o600))).asymmetricKeyType, "ed25519");
    assert.equal((await readPushPublicKey(await file("ok.pub", pub, 0o644))).asymmetricKeyType, "ed25519");
    await assert.rejects(readPushPublicKey(await file("w.pub", pub, 0o666)), /writable by every user/);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({
      type: "spki",
      format: "pem",
    });
    await assert.rejects(readPushPublicKey(await file("rsa.pub", rsa, 0o644)), /Ed25519/);
    await assert.rejects(readSharedKey(await file("short", "abc\n", 0o600)), /shorter than 16/);
    await assert.rejects(readSharedKey(await file("open", "x".repeat(64), 0o604)), /readable by every user/);
    assert.equal((await readSharedKey(await file("key", "k".repeat(64) + "\n", 0o600))).length, 64);
    await assert.rejects(readSharedKey(`${dir}/missing`), /ENOENT/);
  });

  test("etcd credentials come from a private file; the error never shows the password", async () => {
    const cl = (password_file: string) =>
      ({
        name: "web",
        vip: ["192.0.2.2"],
        interface: "eth0",
        buckets: 8,
        hash: "source",
        etcd: ["https://192.0.2.250:2379"],
        lease: 2000,
        etcd_auth: { username: "nflb", password_file },
      }) as ClusterConfig;
    const ok = await etcdOptions(cl(await file("pw", "s3cret-pass\n", 0o600)));
    assert.deepEqual(ok.auth, { username: "nflb", password: "s3cret-pass" });
    await assert.rejects(etcdOptions(cl(await file("pw-open", "s3cret-pass\n", 0o644))), (e: Error) => {
      assert.match(e.message, /readable by every user/);
      assert.doesNotMatch(e.message, /s3cret/);
      return true;
    });
  });
});
