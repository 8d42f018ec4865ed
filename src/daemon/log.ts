import { destination, pino, type DestinationStream, type Logger } from "pino";

/** The subset of pino the daemon uses: structured fields first, message second. */
export type Log = Pick<Logger, "info" | "warn" | "error" | "debug">;

/** One JSON object per line on stdout (or `dest`), with an ISO time: made for journald and jq. */
export function createLogger(dest?: DestinationStream, level = process.env.NFLB_LOG_LEVEL ?? "info"): Logger {
  return pino(
    {
      name: "nflb",
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest ?? destination({ dest: 1, sync: true }),
  );
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLog: Log = createLogger(undefined, "silent");
