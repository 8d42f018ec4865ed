// A second process for the lock tests: `hold PATH WHAT MS` holds the lock MS ms (prints "held");
// `count PATH FILE N` increments FILE N times under the lock, with a read-sleep-write race window.
import { readFileSync, writeFileSync } from "node:fs";
import { acquireStateLock, withStateLock } from "../../src/system/lock.ts";

const [mode, path = "", a = "", b = ""] = process.argv.slice(2);
if (mode === "hold") {
  const lock = await acquireStateLock(a, { path, waitMs: 5000 });
  process.stdout.write("held\n");
  await new Promise((r) => setTimeout(r, Number(b)));
  await lock?.release();
} else if (mode === "count") {
  for (let i = 0; i < Number(b); i++)
    await withStateLock(
      "nflb apply",
      async () => {
        const n = Number(readFileSync(a, "utf8"));
        await new Promise((r) => setTimeout(r, 5));
        writeFileSync(a, String(n + 1));
      },
      { path, waitMs: 20_000, pollMs: 10 },
    );
}
