// Readiness for systemd's Type=notify: once `nflb run` has installed the data plane and serves the
// API, the unit counts as started (so `systemctl start nflb` returns then, and units ordered after
// it see a working balancer). Node has no AF_UNIX datagram sockets, so systemd's own
// `systemd-notify` sends the message; it waits until the service manager has taken it (which
// is what lets a helper process's message be credited to the unit; the unit sets NotifyAccess=all).
import { exec, type ExecResult } from "./exec.ts";

type Runner = (
  argv: readonly string[],
  opts: { timeoutMs: number; env: NodeJS.ProcessEnv },
) => Promise<ExecResult>;

/**
 * Tell systemd the daemon is ready, when started by systemd with Type=notify (NOTIFY_SOCKET set);
 * otherwise do nothing. Returns whether a notification was sent; throws when sending failed.
 */
export async function notifyReady(
  env: NodeJS.ProcessEnv = process.env,
  run: Runner = exec,
): Promise<boolean> {
  if (!env.NOTIFY_SOCKET) return false;
  const argv = ["systemd-notify", "--ready", `--pid=${process.pid}`];
  const r = await run(argv, { timeoutMs: 10_000, env });
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return true;
}
