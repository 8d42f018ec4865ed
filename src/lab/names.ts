import { randomInt } from "node:crypto";

/** Owner files live here; /run is tmpfs, so a reboot (which also drops every namespace) clears them too. */
export const LAB_RUN_DIR = "/run/nflb-lab";

const BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz";
const PREFIX_RE = /^nl([0-9a-z]{4})-$/;

/** A fresh per-run prefix such as `nlk3x9-`: short enough that `${prefix}router` stays readable. */
export function newLabPrefix(random: (max: number) => number = randomInt): string {
  let id = "";
  for (let i = 0; i < 4; i++) id += BASE36[random(36)];
  return `nl${id}-`;
}

export function isLabPrefix(prefix: string): boolean {
  return PREFIX_RE.test(prefix);
}

/** The prefix a namespace name belongs to, or undefined when it is not a lab namespace. */
export function prefixOfNetns(name: string): string | undefined {
  const m = /^(nl[0-9a-z]{4}-)[a-z0-9]+$/.exec(name);
  return m?.[1];
}

export function netnsName(prefix: string, role: string): string {
  if (!/^[a-z][a-z0-9]*$/.test(role)) throw new Error(`invalid lab role "${role}"`);
  return `${prefix}${role}`;
}

/** Root-namespace end of the optional host link; interface names are capped at 15 bytes. */
export function hostLinkName(prefix: string): string {
  const m = PREFIX_RE.exec(prefix);
  if (!m) throw new Error(`invalid lab prefix "${prefix}"`);
  return `nflbh${m[1]}`;
}

export function ownerFilePath(prefix: string): string {
  return `${LAB_RUN_DIR}/${prefix}.pid`;
}

/** Owner file name → prefix, e.g. `nlk3x9-.pid` → `nlk3x9-`. */
export function prefixOfOwnerFile(file: string): string | undefined {
  const m = /^(nl[0-9a-z]{4}-)\.pid$/.exec(file);
  return m?.[1];
}
