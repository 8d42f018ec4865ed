import { fstatSync } from "node:fs";
import { destination, pino, type DestinationStream, type Logger } from "pino";

/** The subset of pino the daemon uses: structured fields first, message second. */
export type Log = Pick<Logger, "info" | "warn" | "error" | "debug">;

/** syslog priorities of pino's levels: what journald files each line under (`journalctl -p`). */
export const SYSLOG_PRIORITY: Readonly<Record<string, number>> = {
  fatal: 2,
  error: 3,
  warn: 4,
  info: 6,
  debug: 7,
  trace: 7,
};

/**
 * Is stdout the journal? systemd sets JOURNAL_STREAM=DEV:INODE for a service whose stdout is
 * connected to it; the check against fd 1 keeps a child whose output was redirected from
 * inheriting the prefix. NFLB_LOG_FORMAT=journal forces it on, =json off.
 */
export function journalWanted(env: NodeJS.ProcessEnv = process.env, fd = 1): boolean {
  if (env.NFLB_LOG_FORMAT === "journal") return true;
  if (env.NFLB_LOG_FORMAT === "json") return false;
  const js = env.JOURNAL_STREAM;
  if (!js) return false;
  try {
    const st = fstatSync(fd);
    return js === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/**
 * Prefix each JSON line with `<N>`, its syslog priority: journald's SyslogLevelPrefix (on by
 * default) strips it and stores the line at that priority instead of everything at info.
 */
export function journalStream(inner: DestinationStream): DestinationStream {
  return {
    write(line: string) {
      const level = /^\{"level":"(\w+)"/.exec(line)?.[1];
      inner.write(`<${SYSLOG_PRIORITY[level ?? ""] ?? 6}>${line}`);
    },
  };
}

/**
 * One JSON object per line on stdout (or `dest`), with an ISO time: made for jq; under journald
 * each line also carries its priority (see journalWanted).
 */
export function createLogger(
  dest?: DestinationStream,
  level = process.env.NFLB_LOG_LEVEL ?? "info",
  journal = dest === undefined && journalWanted(),
): Logger {
  const out = dest ?? destination({ dest: 1, sync: true });
  return pino(
    {
      name: "nflb",
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // `level` must stay the first key: journalStream reads it from the start of the line.
      formatters: { level: (label) => ({ level: label }) },
    },
    journal ? journalStream(out) : out,
  );
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLog: Log = createLogger(undefined, "silent", false);
