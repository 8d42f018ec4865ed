/**
 * Wait for something to become true, checking every `everyMs`; fail naming `what` after
 * `timeoutMs`. Tests wait for the event itself rather than sleep a fixed time that a loaded
 * machine may overrun; the deadline is generous because it only bounds a test that is failing.
 */
export async function until(
  what: string,
  ok: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
  everyMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
