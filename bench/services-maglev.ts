// Maglev lookup tables as nflb builds them (src/plan/maglev.ts): build time, balance (max/mean
// slots per backend) and disruption (slots of the surviving backends that change owner when one
// backend leaves: by failing or draining, the table dealt from the configured one; by a config
// edit, the configured table dealt from the one in force, what the daemon does; and by a config
// edit planned cold, populated again as plain Maglev: a restart or `nflb apply`), and what a config
// edit that adds a backend moves, for several backend counts N and table sizes M. Pure
// computation, no root.
//
//   node --import tsx bench/services-maglev.ts
//
// Prints a markdown section for bench/RESULTS.md.
import { maglevBase, maglevSize, maglevTable } from "../src/plan/maglev.ts";
import { dateLine, loadLine, machineLine } from "./lib/report.ts";
import { markdownTable } from "./lib/stats.ts";

const CASES: [number, number][] = [
  [3, maglevSize(3)],
  [5, maglevSize(5)],
  [10, maglevSize(10)],
  [10, 16381],
  [20, maglevSize(20)],
  [50, maglevSize(50)],
  [100, maglevSize(100)],
  [100, 16381],
  [1000, maglevSize(1000)],
  [1000, 65537],
];
/** Removals tried per case (each a different backend). */
const REMOVALS = 10;

const names = (n: number) =>
  Array.from({ length: n }, (_, i) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}:80`);
const eq = (ns: string[]) => ns.map((name) => ({ name, weight: 1 }));

const rows: string[][] = [];
for (const [n, m] of CASES) {
  const all = names(n);
  const t0 = performance.now();
  const before = maglevTable(eq(all), m, eq(all));
  const buildMs = performance.now() - t0;
  const load = new Map<string, number>();
  for (const b of before) load.set(b, (load.get(b) ?? 0) + 1);
  const maxOverMean = Math.max(...load.values()) / (m / n);
  const failed: number[] = [];
  const edited: number[] = [];
  const cold: number[] = [];
  const added: number[] = [];
  const share = (after: string[], gone: string) => {
    let changed = 0;
    let others = 0;
    for (let i = 0; i < m; i++) {
      if (before[i] === gone) continue;
      others++;
      if (after[i] !== before[i]) changed++;
    }
    return changed / others;
  };
  for (let k = 0; k < Math.min(REMOVALS, n); k++) {
    const gone = all[Math.floor((k * n) / Math.min(REMOVALS, n))] as string;
    const rest = eq(all.filter((x) => x !== gone));
    failed.push(share(maglevTable(rest, m, eq(all)), gone));
    edited.push(share(maglevBase(rest, m, before), gone));
    cold.push(share(maglevTable(rest, m), gone));
    // An add: slots that change owner beyond the new backend's own share (ideal: 0).
    const extra = `203.0.113.${k}:80`;
    const more = maglevBase(eq([...all, extra]), m, before);
    let moved = 0;
    for (let i = 0; i < m; i++) if (more[i] !== before[i] && more[i] !== extra) moved++;
    added.push(moved / m);
  }
  const pct = (xs: number[]) =>
    `${((xs.reduce((s, x) => s + x, 0) / xs.length) * 100).toFixed(2)}% / ${(Math.max(...xs) * 100).toFixed(2)}%`;
  rows.push([
    String(n),
    `${m}${m === maglevSize(n) ? " (nflb's choice)" : ""}`,
    (m / n).toFixed(0),
    buildMs.toFixed(1),
    maxOverMean.toFixed(4),
    pct(failed),
    pct(edited),
    pct(added),
    pct(cold),
  ]);
  process.stderr.write(`${n} backends, M=${m} done\n`);
}

const out = [
  "### Maglev: balance and disruption",
  "",
  `${dateLine()}; ${await machineLine()}; ${loadLine()}.`,
  `Equal weights. "Moved" = share of the slots NOT owned by the removed backend that change owner when one backend leaves (ideal: 0), mean / worst over ${REMOVALS} different removals (every backend when N < ${REMOVALS}): when it fails or is drained (the table dealt from the configured one), when a config edit removes it (the configured table dealt from the one in force: what the daemon does), and when a config edit is planned cold (populated again, plain Maglev: a daemon restart or \`nflb apply\` after the edit). "Add": share of all slots that change owner to another backend than the one a config edit adds (ideal: 0; the added backend takes its share). Same M before and after (an edit keeps M unless N crosses a step of the size ladder). The kernel indexes the table with \`jhash ip saddr mod M\`, so a client moves exactly when its slot does.`,
  "",
  markdownTable(
    [
      "N backends",
      "M slots",
      "M/N",
      "build ms",
      "max/mean slots",
      "others moved: failure or drain (mean / worst)",
      "others moved: config edit (mean / worst)",
      "config add: others moved (mean / worst)",
      "others moved: config edit planned cold (mean / worst)",
    ],
    rows,
  ),
  "",
];
process.stdout.write(out.join("\n") + "\n");
