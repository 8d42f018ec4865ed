import { readFile, writeFile } from "node:fs/promises";

/** Sysctls are read and written through /proc/sys directly (no `sysctl` process, no shell). */
export function sysctlPath(key: string): string {
  // Keys use "/" as separator where an interface name contains dots (net/ipv4/conf/eth0.100/rp_filter).
  const parts = key.includes("/") ? key.split("/") : key.split(".");
  if (parts.some((p) => p === ".." || p === "" || p.includes("\0"))) throw new Error(`bad sysctl key ${key}`);
  return `/proc/sys/${parts.join("/")}`;
}

export async function readSysctl(key: string): Promise<string | null> {
  try {
    return (await readFile(sysctlPath(key), "utf8")).trim();
  } catch {
    return null;
  }
}

export async function writeSysctl(key: string, value: string): Promise<void> {
  await writeFile(sysctlPath(key), value + "\n");
}

/** A setting of one interface (`net/ipv4/conf/tun1/rp_filter`), not of all or the default. */
export const isInterfaceKey = (key: string) => /^net\/ipv[46]\/conf\/(?!all\/|default\/)/.test(key);
