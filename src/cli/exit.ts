import type { StatusJson } from "../daemon/status.ts";

/**
 * Exit statuses scripts and monitoring can rely on (the contract): 0 ok; 1 a runtime failure;
 * 2 the config is invalid. `status` also says how healthy the daemon is: 1 degraded, 2 down.
 */
export const EXIT = { ok: 0, failure: 1, config: 2, degraded: 1, down: 2 } as const;

/** An error the user can act on: printed as one plain line (no stack), with its exit status. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/**
 * The exit status for an error that ended a verb. Classes are matched by name, so that main.ts
 * need not load the config or nft modules to classify what they throw.
 */
export function exitCodeOf(e: unknown): number {
  if (e instanceof CliError) return e.exitCode;
  if (e instanceof Error && e.name === "ConfigError") return EXIT.config;
  return EXIT.failure;
}

/** Errors whose message is the whole story; anything else is a bug and shows its stack. */
export function isPlain(e: unknown): e is Error {
  return (
    e instanceof Error &&
    [
      "CliError",
      "ConfigError",
      "NftError",
      "StateLockError",
      "StateFileError",
      "IpBatchError",
      "ExecViaError",
      "EtcdError",
      "EtcdUnavailableError",
    ].includes(e.name)
  );
}

/**
 * How a verb that failed ends the process: errors the user can act on printed plainly, anything
 * else (a bug) with its stack; with `--json`, errorJson on stdout too.
 */
export function reportFailure(e: unknown, argv: readonly string[]): never {
  const text = isPlain(e) ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
  process.stderr.write(`nflb: ${text}\n`);
  // `--json` of nflb's own options, not of a command after `--` (exec).
  const own = argv.slice(2, (argv.indexOf("--") + 1 || argv.length + 1) - 1);
  if (own.includes("--json")) process.stdout.write(JSON.stringify(errorJson(e), null, 2) + "\n");
  process.exit(exitCodeOf(e));
}

/** What `--json` prints on stdout when a verb fails (the message also goes to stderr). */
export function errorJson(e: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ok: false,
    exit: exitCodeOf(e),
    error: e instanceof Error ? e.message : String(e),
  };
  // A ConfigError, or a reload the daemon refused for one: where each problem is.
  const ce = e as { file?: unknown; issues?: unknown };
  if (ce.file !== undefined) out.file = ce.file;
  if (ce.issues !== undefined) out.issues = ce.issues;
  return out;
}

export type Health = "up" | "degraded" | "down";

/**
 * How healthy a daemon's status is. Down: every uplink is down or disabled (with uplinks), or,
 * with only services, no service has a backend that takes connections. Degraded: some uplink is
 * not up, or some backend is down or in maint. Draining backends are a deliberate state, not a fault.
 */
export function healthOf(s: StatusJson): Health {
  const uplinksUp = s.uplinks.filter((u) => u.state === "up").length;
  if (s.uplinks.length > 0 && (uplinksUp === 0 || s.keeping_last_data_plane)) return "down";
  const serving = (b: { state: string }) => b.state === "up" || b.state === "draining";
  if (
    s.uplinks.length === 0 &&
    s.services.length > 0 &&
    s.services.every((svc) => !svc.backends.some((b) => b.state === "up"))
  )
    return "down";
  if (uplinksUp < s.uplinks.length) return "degraded";
  if (s.services.some((svc) => svc.backends.some((b) => !serving(b)))) return "degraded";
  return "up";
}

export function statusExitCode(s: StatusJson): number {
  const h = healthOf(s);
  return h === "up" ? EXIT.ok : h === "degraded" ? EXIT.degraded : EXIT.down;
}

/** The lines every verb's --help ends with. */
export const EXIT_HELP = {
  common:
    "Exit status: 0 done; 2 the config is invalid (the error names its YAML path and line); 1 any other failure.",
  check:
    "Exit status: 0 valid; 2 invalid or unreadable (every error names its YAML path and line; nothing touched);\n1 the check itself failed (this host's interfaces could not be read).",
  status:
    "Exit status: 0 every uplink and backend up; 1 degraded (an uplink down or disabled, a backend down or in maint);\n" +
    "2 down (every uplink down, or with services only, no backend up) or no daemon answers.",
  control:
    "Exit status: 0 done (the kernel has the change); 1 refused or failed (unknown name, no daemon, apply failed).",
  reload:
    "Exit status: 0 the new config runs (the kernel has it); 2 the new config is invalid (the error names its\n" +
    "YAML path and line; the running one keeps serving); 1 any other failure (no daemon, the apply failed).",
} as const;
