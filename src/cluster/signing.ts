import { sign, verify, type KeyObject } from "node:crypto";

/**
 * What a push signs: the cluster's name, the version and the text, in one unambiguous byte string
 * (a name is [a-z0-9_-], a version an integer, and the text comes last). A signed document
 * replayed under another version or into another cluster does not verify.
 */
export function signedBytes(cluster: string, version: number, text: string): Buffer {
  return Buffer.from(`nflb-cluster-config/1\n${cluster}\n${version}\n${text}`, "utf8");
}

/** Ed25519 signature, base64. */
export function signConfig(key: KeyObject, cluster: string, version: number, text: string): string {
  return sign(null, signedBytes(cluster, version, text), key).toString("base64");
}

export function verifyConfig(
  key: KeyObject,
  cluster: string,
  version: number,
  text: string,
  signature: string | undefined,
): boolean {
  if (!signature || signature.length > 200) return false;
  const sig = Buffer.from(signature, "base64");
  if (sig.length !== 64) return false;
  try {
    return verify(null, signedBytes(cluster, version, text), key, sig);
  } catch {
    return false;
  }
}
