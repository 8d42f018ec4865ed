import type { LineProcess, SpawnLines } from "../src/health/probe-process.ts";

/** A scripted stand-in for a helper process: tests push its stdout lines and decide when it exits. */
export class FakeProcess implements LineProcess {
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  readonly signals: string[] = [];
  private resolveExit!: (e: { code: number | null; signal: string | null }) => void;
  private gone = false;
  private err = "";

  constructor(
    readonly argv: readonly string[],
    private readonly onLine: (line: string) => void,
    pid: number,
  ) {
    this.pid = pid;
    this.exited = new Promise((r) => (this.resolveExit = r));
  }

  line(...lines: string[]): void {
    if (this.gone) throw new Error("fake process has exited");
    for (const l of lines) this.onLine(l);
  }

  exit(code: number | null, stderr = "", signal: string | null = null): void {
    if (this.gone) return;
    this.err += stderr;
    this.gone = true;
    this.resolveExit({ code, signal });
  }

  get alive(): boolean {
    return !this.gone;
  }

  stderr(): string {
    return this.err;
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    this.signals.push(signal);
    this.exit(null, "", signal);
  }
}

/** A SpawnLines that records every process it "starts". */
export function fakeSpawn(): { spawn: SpawnLines; procs: FakeProcess[] } {
  const procs: FakeProcess[] = [];
  const spawn: SpawnLines = (argv, onLine) => {
    const p = new FakeProcess(argv, onLine, 40_000 + procs.length);
    procs.push(p);
    return p;
  };
  return { spawn, procs };
}
