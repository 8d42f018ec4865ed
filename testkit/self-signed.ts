// A throw-away self-signed certificate (openssl) for HTTPS check tests: unit and lab.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../src/system/exec.ts";

export interface SelfSigned {
  dir: string;
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
  remove(): Promise<void>;
}

/** A P-256 certificate for `name` (CN and subjectAltName), valid two days, in a new temp dir. */
export async function selfSigned(name: string): Promise<SelfSigned> {
  if (!/^[a-z0-9.-]+$/i.test(name)) throw new Error(`bad certificate name ${name}`);
  const dir = await mkdtemp(join(tmpdir(), "nflb-cert-"));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  // argv, never a shell; -nodes: the lab server reads the key without a passphrase.
  await run([
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    `subjectAltName=DNS:${name}`,
  ]);
  return {
    dir,
    certFile,
    keyFile,
    cert: await readFile(certFile),
    key: await readFile(keyFile),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
