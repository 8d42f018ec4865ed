import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import type { ClusterConfig } from "../config/schema.ts";
import { EtcdClient, type EtcdClientOptions, type EtcdTls } from "../system/etcd.ts";

/** Keys and passwords are small; a larger file is not one. */
const MAX_SECRET_BYTES = 64 * 1024;

/**
 * Read a file that holds a secret (a key, a password): a regular file that no other user can
 * read. The error names the file and the fix, never its content.
 */
export async function readSecretFile(path: string, what: string): Promise<Buffer> {
  const st = await stat(path).catch((e: unknown) => {
    throw new Error(`${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? "cannot read"}`);
  });
  if (!st.isFile()) throw new Error(`${what} ${path}: not a regular file`);
  if (st.mode & 0o007)
    throw new Error(
      `${what} ${path}: readable by every user (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
    );
  if (st.size > MAX_SECRET_BYTES) throw new Error(`${what} ${path}: larger than ${MAX_SECRET_BYTES} bytes`);
  return readFile(path);
}

/** Read a file others may read but nobody else may change (a public key, a CA certificate). */
export async function readPublicFile(path: string, what: string): Promise<Buffer> {
  const st = await stat(path).catch((e: unknown) => {
    throw new Error(`${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? "cannot read"}`);
  });
  if (!st.isFile()) throw new Error(`${what} ${path}: not a regular file`);
  if (st.mode & 0o002) throw new Error(`${what} ${path}: writable by every user; chmod o-w it`);
  if (st.size > MAX_SECRET_BYTES) throw new Error(`${what} ${path}: larger than ${MAX_SECRET_BYTES} bytes`);
  return readFile(path);
}

/** The witness key: the file's text without surrounding white space, at least 16 bytes. */
export async function readSharedKey(path: string): Promise<Buffer> {
  const raw = (await readSecretFile(path, "cluster.key_file")).toString("utf8").trim();
  if (Buffer.byteLength(raw) < 16)
    throw new Error(
      `cluster.key_file ${path}: shorter than 16 bytes (make one: openssl rand -hex 32 > ${path})`,
    );
  return Buffer.from(raw, "utf8");
}

export async function readPushPublicKey(path: string): Promise<KeyObject> {
  const pem = await readPublicFile(path, "cluster.push_public_key");
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new Error(`cluster.push_public_key ${path}: not a PEM public key`);
  }
  if (key.asymmetricKeyType !== "ed25519")
    throw new Error(
      `cluster.push_public_key ${path}: an Ed25519 key is needed (got ${key.asymmetricKeyType})`,
    );
  return key;
}

export async function readPushSigningKey(path: string): Promise<KeyObject> {
  const pem = await readSecretFile(path, "signing key");
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new Error(`signing key ${path}: not a PEM private key`);
  }
  if (key.asymmetricKeyType !== "ed25519")
    throw new Error(`signing key ${path}: an Ed25519 key is needed (got ${key.asymmetricKeyType})`);
  return key;
}

/** TLS material and etcd credentials named by the cluster config, read and checked. */
export async function etcdOptions(cl: ClusterConfig): Promise<Pick<EtcdClientOptions, "tls" | "auth">> {
  const out: Pick<EtcdClientOptions, "tls" | "auth"> = {};
  if (cl.etcd_tls) {
    const t = cl.etcd_tls;
    const tls: EtcdTls = {};
    if (t.ca) tls.ca = await readPublicFile(t.ca, "cluster.etcd_tls.ca");
    if (t.cert) tls.cert = await readPublicFile(t.cert, "cluster.etcd_tls.cert");
    if (t.key) tls.key = await readSecretFile(t.key, "cluster.etcd_tls.key");
    out.tls = tls;
  }
  if (cl.etcd_auth) {
    const password = (await readSecretFile(cl.etcd_auth.password_file, "cluster.etcd_auth.password_file"))
      .toString("utf8")
      .replace(/\r?\n$/, "");
    if (!password) throw new Error(`cluster.etcd_auth.password_file ${cl.etcd_auth.password_file}: empty`);
    out.auth = { username: cl.etcd_auth.username, password };
  }
  return out;
}

/** An etcd client as the cluster config describes it (endpoints, TLS, credentials). */
export async function clusterEtcdClient(cl: ClusterConfig, opts: { timeoutMs: number }): Promise<EtcdClient> {
  return new EtcdClient(cl.etcd, { ...opts, ...(await etcdOptions(cl)) });
}
