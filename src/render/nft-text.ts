/** Small helpers for writing nft syntax; everything that reaches nft passes through here. */

export const TABLE = "nflb";
export const FAMILY = "inet";

export function q(s: string): string {
  // Interface names are validated before planning; quoting keeps nft from reading them as keywords.
  return `"${s}"`;
}

export function hex(n: number): string {
  return "0x" + (n >>> 0).toString(16).padStart(8, "0");
}

export function setBlock(
  name: string,
  typeofExpr: string,
  elements: string[],
  flags: string[] = [],
  extra: string[] = [],
): string[] {
  const lines = [`\tset ${name} {`, `\t\ttypeof ${typeofExpr}`];
  if (flags.length) lines.push(`\t\tflags ${flags.join(",")}`);
  lines.push(...extra.map((e) => `\t\t${e}`));
  if (elements.length) lines.push(`\t\telements = { ${elements.join(", ")} }`);
  lines.push("\t}");
  return lines;
}

export function mapBlock(
  name: string,
  typeofExpr: string,
  elements: string[],
  flags: string[] = [],
  extra: string[] = [],
): string[] {
  const lines = setBlock(name, typeofExpr, elements, flags, extra);
  lines[0] = `\tmap ${name} {`;
  return lines;
}

export function chainBlock(name: string, rules: string[], hook?: string): string[] {
  return [`\tchain ${name} {`, ...(hook ? [`\t\t${hook}`] : []), ...rules.map((r) => `\t\t${r}`), "\t}"];
}

/** `meta mark` / `ct mark` assignment that touches only the bits inside `mask`. */
export function setMasked(what: "meta mark" | "ct mark", value: number, mask: number): string {
  return `${what} set ${what} and ${hex(~mask >>> 0)} or ${hex(value)}`;
}
