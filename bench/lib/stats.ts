// Timing and summary statistics shared by the benches. Small on purpose: min/median/max over a
// handful of runs is what a reader can check against their own machine.

export interface Summary {
  n: number;
  min: number;
  median: number;
  max: number;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error("summarize: no samples");
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { n: s.length, min: s[0] as number, median, max: s[s.length - 1] as number };
}

/** Milliseconds taken by `fn`, with its result. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** Run `fn` `runs` times (after `warmup` unrecorded runs) and return the recorded durations in ms. */
export async function repeat(
  runs: number,
  fn: (i: number) => Promise<unknown>,
  opts: { warmup?: number; between?: () => Promise<unknown> } = {},
): Promise<number[]> {
  for (let i = 0; i < (opts.warmup ?? 0); i++) {
    await fn(-1);
    await opts.between?.();
  }
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    out.push((await timed(() => fn(i))).ms);
    await opts.between?.();
  }
  return out;
}

export function fmtMs(ms: number): string {
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 10) return ms.toFixed(1);
  return ms.toFixed(2);
}

/** `min / median / max` in ms, as the result tables print it. */
export function fmtSummaryMs(s: Summary): string {
  return `${fmtMs(s.min)} / ${fmtMs(s.median)} / ${fmtMs(s.max)}`;
}

/** A GitHub-flavoured markdown table. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}
