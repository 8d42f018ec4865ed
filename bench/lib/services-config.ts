// A services config as bench/services-scale.ts writes it: `services` round-robin (or maglev)
// services of `backends` backends each, one flow mapping per backend line, as a user would.

/** Backend n (0-based, global) → an address in 198.18.0.0/15. */
export const backendAddr = (n: number) => `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;

export function servicesConfigYaml(services: number, backends: number, scheduler: string): string {
  const lines = ["version: 1", "services:"];
  for (let s = 0; s < services; s++) {
    lines.push(
      `  s${s}:`,
      `    listen: 203.0.113.${10 + (s >> 14)}:${1000 + (s & 16383)}`,
      `    scheduler: ${scheduler}`,
      "    backends:",
    );
    for (let b = 0; b < backends; b++) lines.push(`      - { address: ${backendAddr(s * backends + b)}:80 }`);
  }
  return lines.join("\n") + "\n";
}
