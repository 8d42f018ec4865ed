import { readFile } from "node:fs/promises";
import { isInterfaceName } from "../net/ip.ts";

export interface LinkBytes {
  rx: number;
  tx: number;
}

/** Byte counters of one interface from sysfs; null when the interface does not exist (any more). */
export async function readLinkBytes(iface: string, root = "/sys/class/net"): Promise<LinkBytes | null> {
  if (!isInterfaceName(iface)) return null;
  const read = (f: string) => readFile(`${root}/${iface}/statistics/${f}`, "utf8").then(Number);
  try {
    const [rx, tx] = await Promise.all([read("rx_bytes"), read("tx_bytes")]);
    return Number.isFinite(rx) && Number.isFinite(tx) ? { rx, tx } : null;
  } catch {
    return null;
  }
}
