import { exec, run } from "../system/exec.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Wait until no IPv6 address in the namespace is still tentative. Link-local addresses go
 * through DAD (about 1 s) even when every configured address uses `nodad`, and a socket
 * cannot bind a tentative address.
 */
export async function waitForDad(netns: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const out = await run(["ip", "-6", "-o", "addr", "show", "tentative"], { netns, timeoutMs: 5000 });
    if (!out.trim()) return;
    if (Date.now() > deadline) throw new Error(`${netns}: IPv6 DAD still running: ${out.trim()}`);
    await sleep(100);
  }
}

/**
 * Wait until `ip -6 route show table all` has not changed for `quietMs`. The kernel adds the
 * fe80::/64 and multicast routes a second or two after a link comes up, so a routing snapshot
 * taken too early differs from one taken later for reasons that have nothing to do with nflb.
 */
export async function waitForRoutesStable(netns: string, quietMs = 500, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const read = async () =>
    (await exec(["ip", "-6", "route", "show", "table", "all"], { netns, timeoutMs: 5000 })).stdout;
  let last = await read();
  let stableSince = Date.now();
  while (Date.now() - stableSince < quietMs) {
    if (Date.now() > deadline) throw new Error(`${netns}: IPv6 routes still changing after ${timeoutMs} ms`);
    await sleep(100);
    const now = await read();
    if (now !== last) {
      last = now;
      stableSince = Date.now();
    }
  }
}
