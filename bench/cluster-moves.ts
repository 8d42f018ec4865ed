// Buckets moved when a member joins or leaves: nflb's assignment vs the minimum vs `hash mod N`.
//   node --import tsx bench/cluster-moves.ts [--buckets 256]
import { parseArgs } from "node:util";
import { minimumMoves, moduloOwners, moves, rebalance } from "../src/cluster/ownership.ts";

const { values } = parseArgs({ options: { buckets: { type: "string", default: "256" } } });
const B = Number(values.buckets);
const names = (n: number) => Array.from({ length: n }, (_, i) => `node${i + 1}`);
const modMoves = (a: string[], b: string[]) => b.filter((o, i) => a[i] !== o).length;

const rows: string[] = [`| change | nflb moved | minimum | mod N moved |`, `|---|---:|---:|---:|`];
for (let n = 2; n <= 8; n++) {
  const prev = rebalance(null, names(n), B);
  const left = names(n).slice(0, -1);
  rows.push(
    `| leave ${n}→${n - 1} | ${moves(prev, rebalance(prev, left, B))} | ${minimumMoves(prev, left)} | ${modMoves(moduloOwners(names(n), B), moduloOwners(left, B))} |`,
  );
  const joined = names(n + 1);
  rows.push(
    `| join ${n}→${n + 1} | ${moves(prev, rebalance(prev, joined, B))} | ${minimumMoves(prev, joined)} | ${modMoves(moduloOwners(names(n), B), moduloOwners(joined, B))} |`,
  );
}
process.stdout.write(`buckets: ${B}\n${rows.join("\n")}\n`);
