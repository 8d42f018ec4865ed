import { test } from "node:test";
import assert from "node:assert/strict";
import { FpingProber, fpingArgv, parseFpingLine } from "../../src/health/fping.ts";
import { ManualClock } from "../../src/health/probe-clock.ts";
import { fakeSpawn } from "../../testkit/probe-fakes.ts";
import type { RoundResult } from "../../src/health/probe-types.ts";
import { parseAddr, type Addr } from "../../src/net/ip.ts";

const A = (s: string) => parseAddr(s) as Addr;

test("parses replies and timeouts as fping 5.1 prints them in loop mode", () => {
  assert.deepEqual(parseFpingLine("198.18.200.1 : [0], 64 bytes, 0.158 ms (0.158 avg, 0% loss)"), {
    target: "198.18.200.1",
    seq: 0,
    rttMs: 0.158,
  });
  assert.deepEqual(parseFpingLine("198.18.200.1    : [12], 64 bytes, 446 ms (89.3 avg, 61% loss)"), {
    target: "198.18.200.1",
    seq: 12,
    rttMs: 446,
  });
  assert.deepEqual(parseFpingLine("2001:db8:200::2 : [3], timed out (0.099 avg, 33% loss)"), {
    target: "2001:db8:200::2",
    seq: 3,
    rttMs: null,
  });
  // -D: the time fping printed the line (wall clock), in epoch milliseconds
  const { printedAt, ...stamped } =
    parseFpingLine("[1795425311.18789] 198.18.200.1 : [7], 1048 bytes, 45.9 ms (105 avg, 53% loss)") ?? {};
  assert.deepEqual(stamped, { target: "198.18.200.1", seq: 7, rttMs: 45.9 });
  assert.ok(Math.abs((printedAt ?? 0) - 1795425311187.89) < 0.01, `${printedAt}`);
});

test("parses count mode (-c) lines as fping 5.1 prints them, including the first timeouts", () => {
  assert.deepEqual(parseFpingLine("198.18.77.3 : [0], timed out (NaN avg, 100% loss)"), {
    target: "198.18.77.3",
    seq: 0,
    rttMs: null,
  });
  assert.deepEqual(parseFpingLine("198.18.77.2 : [1], 64 bytes, 0.066 ms (0.696 avg, 0% loss)"), {
    target: "198.18.77.2",
    seq: 1,
    rttMs: 0.066,
  });
  // the summary (stderr in count mode) is not a result
  assert.equal(parseFpingLine("198.18.77.3 : xmt/rcv/%loss = 2/0/100%"), null);
});

test("ignores ICMP errors, duplicates and anything else", () => {
  for (const l of [
    "ICMP Host Unreachable from 100.64.1.1 for ICMP Echo sent to 198.18.200.1",
    "198.18.200.1 : duplicate for [4], 64 bytes, 0.2 ms",
    "fping: error while sending ping: Network is unreachable",
    "",
  ])
    assert.equal(parseFpingLine(l), null, l);
});

test("argv: loop mode bound to the device and one source per family", () => {
  assert.deepEqual(
    fpingArgv(
      { intervalMs: 200, timeoutMs: 500, size: 1000 },
      "wan1",
      [A("100.64.1.2"), A("2001:db8:100:1::2")],
      [A("198.18.200.1"), A("2001:db8:200::1")],
    ),
    // prettier-ignore
    ["fping", "-l", "-D", "-p", "200", "-t", "500", "-i", "1", "-b", "1000", "-e", "-I", "wan1",
     "-S", "100.64.1.2", "-S", "2001:db8:100:1::2", "198.18.200.1", "2001:db8:200::1"],
  );
  assert.throws(() =>
    fpingArgv({ intervalMs: 200, timeoutMs: 500, size: 56 }, "wan1; rm", [], [A("1.2.3.4")]),
  );
  // a burst (fast re-probe): the same binding, count mode
  assert.deepEqual(
    fpingArgv(
      { intervalMs: 50, timeoutMs: 500, size: 56 },
      "wan1",
      [A("100.64.1.2")],
      [A("198.18.200.1")],
      2,
    ),
    // prettier-ignore
    ["fping", "-c", "2", "-p", "50", "-t", "500", "-i", "1", "-b", "56", "-e", "-I", "wan1",
     "-S", "100.64.1.2", "198.18.200.1"],
  );
  const fast = fpingArgv({ intervalMs: 1, timeoutMs: 500, size: 56 }, "wan1", [], [A("198.18.200.1")]);
  assert.equal(fast[fast.indexOf("-p") + 1], "10");
});

const T = ["198.18.200.1", "198.18.200.2"];
const src = { iface: "wan1", addresses: [A("100.64.1.2")] };

function setup(targets = T) {
  const clock = new ManualClock(0);
  const { spawn, procs } = fakeSpawn();
  const rounds: RoundResult[] = [];
  const p = new FpingProber({ targets, intervalMs: 200, timeoutMs: 500, size: 56 }, (r) => rounds.push(r), {
    clock,
    spawn,
    restartDelayMs: 1000,
  });
  const view = () => rounds.map((r) => `${r.seq}:${r.results.map((x) => x.rttMs ?? "-").join(",")}`);
  return { clock, procs, rounds, p, view };
}

const reply = (t: string, seq: number, ms: number) => `${t} : [${seq}], 64 bytes, ${ms} ms (1 avg, 0% loss)`;
const lost = (t: string, seq: number) => `${t} : [${seq}], timed out (1 avg, 50% loss)`;

test("one fping per uplink; lines become rounds in order", () => {
  const { clock, procs, p, view } = setup();
  p.start(src);
  assert.equal(procs.length, 1);
  assert.deepEqual(procs[0]?.argv.slice(-4), ["-S", "100.64.1.2", ...T]);
  clock.advance(1);
  procs[0]?.line(reply(T[0] as string, 0, 1.5), reply(T[1] as string, 0, 2));
  clock.advance(200);
  procs[0]?.line(reply(T[0] as string, 1, 1));
  clock.advance(400);
  procs[0]?.line(lost(T[1] as string, 1));
  assert.deepEqual(view(), ["0:1.5,2", "1:1,-"]);
});

test("silence still ends rounds: deadlines from fping's schedule", () => {
  const { clock, procs, p, rounds } = setup();
  p.start(src);
  clock.advance(1);
  procs[0]?.line(reply(T[0] as string, 0, 1), reply(T[1] as string, 0, 1));
  // fping goes quiet (sendto failing): rounds 1.. are concluded as lost at start+timeout+interval+250
  clock.advance(3000);
  assert.ok(rounds.length >= 10, `${rounds.length} rounds`);
  assert.ok(rounds.slice(1).every((r) => r.results.every((x) => x.rttMs === null)));
  assert.deepEqual(
    rounds.map((r) => r.seq),
    rounds.map((_, i) => i),
  );
  const r1 = rounds[1] as RoundResult;
  assert.ok(r1.at - r1.startedAt >= 500 && r1.at - r1.startedAt <= 1000, `${r1.at - r1.startedAt}`);
});

test("a gap in fping's sequence numbers is filled with lost rounds", () => {
  const { clock, procs, p, view } = setup();
  p.start(src);
  clock.advance(1);
  procs[0]?.line(reply(T[0] as string, 0, 1), reply(T[1] as string, 0, 1));
  clock.advance(800);
  procs[0]?.line(reply(T[0] as string, 4, 1), reply(T[1] as string, 4, 1));
  clock.advance(1000);
  assert.deepEqual(view(), ["0:1,1", "1:-,-", "2:-,-", "3:-,-", "4:1,1"]);
});

test("fping exiting fails the rounds with why, and it is restarted after a delay", async () => {
  const { clock, procs, p, rounds } = setup();
  p.start(src);
  clock.advance(1);
  procs[0]?.line(reply(T[0] as string, 0, 1), reply(T[1] as string, 0, 1));
  procs[0]?.exit(4, "fping: cannot bind source address : Cannot assign requested address\n");
  await Promise.resolve();
  clock.advance(600);
  assert.equal(procs.length, 1);
  const failed = rounds.slice(1);
  assert.ok(failed.length >= 2);
  assert.match(failed[0]?.error ?? "", /^fping exited 4: fping: cannot bind source address/);
  clock.advance(400);
  assert.equal(procs.length, 1, "not before the delay is over and the next round of the grid");
  clock.advance(199);
  assert.equal(procs.length, 2, "restarted");
  assert.deepEqual(procs[1]?.argv, procs[0]?.argv);
  const before = rounds.length;
  procs[1]?.line(reply(T[0] as string, 0, 1), reply(T[1] as string, 0, 1));
  const last = rounds[rounds.length - 1] as RoundResult;
  assert.equal(rounds.length, before + 1);
  assert.equal(last.seq, before, "seqs continue across the restart");
  assert.equal(last.error, undefined);
});

test("stop kills the fping we started and drops rounds still waiting", async () => {
  const { clock, procs, p, rounds } = setup();
  p.start(src);
  clock.advance(1);
  procs[0]?.line(reply(T[0] as string, 0, 1));
  await p.stop();
  assert.deepEqual(procs[0]?.signals, ["SIGTERM"]);
  clock.advance(5000);
  assert.equal(rounds.length, 0);
  assert.equal(clock.pending, 0);
  p.start(src);
  clock.advance(199);
  assert.equal(procs.length, 2, "can start again, at the next round of the grid");
  await p.stop();
});

test("targets of a family the uplink has no address of are not sent, and count as lost", () => {
  const { clock, procs, p, view } = setup(["198.18.200.1", "2001:db8:200::1"]);
  p.start(src);
  assert.deepEqual(procs[0]?.argv.slice(-3), ["-S", "100.64.1.2", "198.18.200.1"]);
  clock.advance(1);
  procs[0]?.line(reply("198.18.200.1", 0, 3));
  assert.deepEqual(view(), ["0:3,-"]);
});

test("without any usable address nothing is spawned and every round fails with why", () => {
  const { clock, procs, p, rounds } = setup();
  p.start({ iface: "wan1", addresses: [] });
  clock.advance(1000);
  assert.equal(procs.length, 0);
  assert.equal(rounds.length, 6);
  assert.ok(rounds.every((r) => r.error === "no address on wan1 for IPv4 targets"));
});

test("an fping that keeps failing is restarted less and less often", async () => {
  const { clock, procs, p } = setup();
  p.start(src);
  const starts: number[] = [clock.now()];
  for (let k = 0; k < 3; k++) {
    procs[procs.length - 1]?.exit(127, "spawn fping ENOENT");
    await Promise.resolve();
    const n = procs.length;
    while (procs.length === n) clock.advance(100);
    starts.push(clock.now());
  }
  assert.deepEqual(
    starts.slice(1).map((t, i) => t - (starts[i] as number)),
    [1000, 2000, 4000],
  );
  procs[procs.length - 1]?.line(reply(T[0] as string, 0, 1));
  procs[procs.length - 1]?.exit(1);
  await Promise.resolve();
  const n = procs.length;
  clock.advance(1000);
  assert.equal(procs.length, n + 1, "after a working run, the delay starts over");
  await p.stop();
});
