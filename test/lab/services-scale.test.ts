// Issue 11, item 5: `nflb run` with 100 maglev services × 10 backends. A backend change (a drain
// through the CLI, a backend whose check fails) reaches the kernel as one small transaction of
// that service's slot elements: `nft monitor` in the balancer's namespace sees no table, chain or
// map created or deleted, and element lines of that one service only, about 2·M/N of them (the
// moved slots deleted and added again). Sizes and counts only, no timings (bench/services-scale.ts
// records those). Needs root.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { spawnTracked, type TrackedProcess } from "../../src/lab/processes.ts";
import { SERVICE_LAB as L, ServiceLab, backendAddress } from "../../src/lab/service-lab.ts";
import { maglevSize } from "../../src/plan/maglev.ts";
import { DaemonFixture } from "../../testkit/daemon-harness.ts";
import { groupOf } from "../../src/plan/nft-groups.ts";
import { groupSlotsMap } from "../../src/nft/names.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;
const SERVICES = 100;
const BACKENDS = 10;
const M = maglevSize(BACKENDS);
const addr = (i: number) => `${backendAddress(i).v4}:80`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function config(): string {
  const lines = ["version: 1", "services:"];
  for (let s = 0; s < SERVICES; s++) {
    lines.push(
      `  s${s}:`,
      `    listen: ${L.vip4}:${1000 + s}`,
      "    scheduler: maglev",
      // A thousand TCP checks would only load the machine; one checked service keeps them honest.
      s === 0
        ? "    check: { method: tcp, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }"
        : "    check: { method: none }",
      "    backends:",
    );
    for (let b = 1; b <= BACKENDS; b++) lines.push(`      - { address: ${addr(b)} }`);
  }
  return lines.join("\n") + "\n";
}

/** What `nft monitor` printed about `inet nflb` while `change` ran. */
async function monitored(lab: ServiceLab, change: () => Promise<void>): Promise<string[]> {
  // Line-buffered: nft's output to a pipe is otherwise held back, and lost when it is stopped.
  const monitor = spawnTracked(["stdbuf", "-oL", "nft", "monitor"], { netns: lab.netns("lb") });
  try {
    // Ready once it reports a table of our own coming and going: it reads the whole ruleset (100,000
    // slots) before it listens, which takes seconds on a busy machine, and starts that read again
    // whenever the ruleset's generation moves under it: probes further and further apart (seen:
    // a probe every 0.5 s at load average 8–10 kept it reading for minutes).
    const deadline = Date.now() + 180_000;
    for (let wait = 500; !monitor.stdout().includes("nlprobe"); wait = Math.min(wait * 1.5, 15_000)) {
      if (Date.now() > deadline)
        throw new Error(
          `nft monitor never reported: ${monitor.stderr()} ${monitor.stdout().length} B: ${monitor.stdout().slice(-500)}`,
        );
      for (const verb of ["add", "delete"]) {
        const r = await lab.exec("lb", ["nft", verb, "table", "inet", "nlprobe"]);
        assert.equal(r.code, 0, r.stderr);
      }
      for (const end = Date.now() + wait; Date.now() < end && !monitor.stdout().includes("nlprobe");)
        await sleep(100);
    }
    await change();
    await sleep(500);
  } finally {
    await monitor.stop();
  }
  return monitor
    .stdout()
    .split("\n")
    .filter((l) => / inet nflb /.test(l));
}

/** One slot element as nft prints it: `VIP . PORT . SLOT : BACKEND-ADDRESS . PORT`. */
const SLOT = /[0-9a-f.:]+ \. \d+ \. \d+ : [0-9a-f.:]+ \. \d+/g;
/** Service `s${s}`'s slot map: shared with the other services of its group (src/plan/nft-groups.ts). */
const slotsOf = (s: number) => groupSlotsMap(4, "tcp", groupOf(`s${s}`));
/** Service `s${s}`'s elements in it: keyed VIP . port . slot. */
const slotsIn = (text: string, s: number) =>
  (text.match(SLOT) ?? []).filter((e) => e.startsWith(`${L.vip4} . ${1000 + s} . `)).length;

/** Checks of one small transaction for service `s${s}`; returns the number of slot elements it carried. */
function assertSmall(lines: string[], s: number): number {
  const all = lines.join("\n");
  const replaced = lines.filter(
    (l) => /^delete (table|chain|set|map|flowtable) /.test(l) || /^add (table|chain|flowtable) /.test(l),
  );
  assert.deepEqual(replaced, [], `no table, chain, set or map was deleted or created:\n${all}`);
  const touched = new Set(
    lines.flatMap((l) => /^(?:add|delete) (?:set|map|element|rule) inet nflb (\S+)/.exec(l)?.[1] ?? []),
  );
  assert.deepEqual([...touched], [slotsOf(s)], `only s${s}'s group slot map changed:\n${all}`);
  const elementLines = lines.filter((l) => /^(add|delete) element /.test(l));
  const elements = elementLines.reduce((n, l) => n + (l.match(SLOT)?.length ?? 0), 0);
  const own = elementLines.reduce((n, l) => n + slotsIn(l, s), 0);
  assert.equal(own, elements, `only s${s}'s elements of the shared map:\n${all}`);
  // The drained backend's ⌈M/N⌉ slots, deleted and added again with their new owners.
  assert.ok(elements > 0 && elements <= 2 * Math.ceil(M / BACKENDS), `${elements} elements:\n${all}`);
  return elements;
}

describe(
  `nflb run with ${SERVICES} maglev services × ${BACKENDS} backends`,
  { skip, timeout: 600_000 },
  () => {
    const lab = new ServiceLab({ backends: BACKENDS });
    const servers = new Map<number, TrackedProcess>();
    // The balancer's daemon, no API; 100,000 slots take a while to load (and to take down).
    const fx = new DaemonFixture(lab, config, {
      role: "lb",
      api: null,
      ready: null,
      startMs: 120_000,
      stopMs: 10_000,
      prepare: async () => {
        for (let b = 1; b <= BACKENDS; b++) servers.set(b, await lab.startBackend(b));
      },
    });
    const cli = (args: string[]) => fx.cli([...args, "-c", fx.file]);

    before(() => fx.up(), { timeout: 180_000 });
    after(() => fx.down(), { timeout: 60_000 });

    test("every service's table holds M slots, and a service answers", { timeout: 240_000 }, async () => {
      assert.equal(M, 1021);
      for (const s of [0, 57, SERVICES - 1]) {
        const r = await lab.exec("lb", ["nft", "list", "map", "inet", "nflb", slotsOf(s)], {
          timeoutMs: 30_000,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(slotsIn(r.stdout, s), M, `${slotsOf(s)} holds ${M} slots of s${s}`);
      }
      const c = await lab.runClient({
        from: "client",
        dst: L.vip4,
        port: 1057,
        count: 20,
        parallel: 4,
        timeoutMs: 1000,
        deadlineMs: 30_000,
      });
      assert.equal(c.failed, 0, c.errors.join("; "));
    });

    test(
      "a drain is one small transaction of that service's slot elements",
      { timeout: 240_000 },
      async () => {
        const lines = await monitored(lab, async () => {
          const d = await cli(["backend", "drain", "s42", addr(3)]);
          assert.equal(d.code, 0, d.stderr);
        });
        const n = assertSmall(lines, 42);
        process.stderr.write(`drain: ${lines.length} monitor lines, ${n} slot elements\n`);
        const e = await cli(["backend", "enable", "s42", addr(3)]);
        assert.equal(e.code, 0, e.stderr);
      },
    );

    test(
      "a failed check is one small transaction of that service's slot elements",
      { timeout: 240_000 },
      async () => {
        // The daemon's log, not `nflb status` (which counts conntrack per service: slow here).
        const why = `backend s0/${addr(5)} down`;
        const applied = () =>
          (fx.daemon?.proc.stdout() ?? "")
            .split("\n")
            .filter((l) => l.includes('"msg":"applied') && l.includes(why));
        const before = applied().length;
        const lines = await monitored(lab, async () => {
          await servers.get(5)?.stop(5000);
          const deadline = Date.now() + 30_000;
          while (applied().length === before) {
            if (Date.now() > deadline)
              throw new Error(`no "${why}" applied:\n${fx.daemon?.proc.stdout().slice(-3000)}`);
            await sleep(200);
          }
        });
        assert.match(applied().at(-1) ?? "", /applied \(update\)/);
        const n = assertSmall(lines, 0);
        process.stderr.write(`check down: ${lines.length} monitor lines, ${n} slot elements\n`);
      },
    );
  },
);
