import { mock, test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { uplinkPassiveOf, uplinkSchema } from "../../src/config/schema.ts";
import type { LinkEvents, LinkSource, LinkState } from "../../src/health/link-watch.ts";
import { ManualClock } from "../../src/health/probe-clock.ts";
import type { PassiveOutcome, UplinkObservation } from "../../src/health/types.ts";
import { createUplinkMonitor } from "../../src/health/uplink-monitor.ts";
import { UplinkPassive, type UplinkPassiveParams } from "../../src/health/uplink-passive.ts";
import { parseAddr, type Addr } from "../../src/net/ip.ts";
import {
  parseUplinkFlowLine,
  uplinkEventsArgv,
  type UplinkFlowEvent,
} from "../../src/system/conntrack-uplink.ts";
import { fakeSpawn } from "../../testkit/probe-fakes.ts";

// ---- conntrack lines ------------------------------------------------------------------------

const NEW_TCP =
  "    [NEW] tcp      6 120 SYN_SENT src=198.18.0.2 dst=203.0.113.10 sport=54024 dport=5000 [UNREPLIED] src=203.0.113.10 dst=100.64.1.2 sport=5000 dport=54024 mark=256 id=121815946";
const SYN_RECV =
  " [UPDATE] tcp      6 60 SYN_RECV src=198.18.0.2 dst=203.0.113.10 sport=54024 dport=5000 src=203.0.113.10 dst=100.64.1.2 sport=5000 dport=54024 mark=256 id=121815946";
const NEW_UDP =
  "    [NEW] udp      17 30 src=198.18.0.2 dst=203.0.113.10 sport=52930 dport=5000 [UNREPLIED] src=203.0.113.10 dst=100.64.1.2 sport=5000 dport=52930 mark=512 id=2826001415";

test("conntrack uplink events: NEW and UPDATE of TCP/UDP with mark, id and the UNREPLIED flag", () => {
  assert.deepEqual(uplinkEventsArgv(), [
    "conntrack",
    "-E",
    "-e",
    "NEW,UPDATE,DESTROY",
    "-b",
    "16777216",
    "-o",
    "timestamp,id",
  ]);
  assert.deepEqual(parseUplinkFlowLine(`[1796312231.604922]\t${NEW_TCP}`), {
    type: "new",
    protocol: "tcp",
    id: 121815946,
    mark: 256,
    unreplied: true,
    at: 1796312231604.922,
  });
  assert.deepEqual(parseUplinkFlowLine(NEW_TCP), {
    type: "new",
    protocol: "tcp",
    id: 121815946,
    mark: 256,
    unreplied: true,
  });
  assert.deepEqual(parseUplinkFlowLine(SYN_RECV), {
    type: "update",
    protocol: "tcp",
    id: 121815946,
    mark: 256,
    unreplied: false,
  });
  assert.equal(parseUplinkFlowLine(NEW_UDP)?.mark, 512);
  assert.equal(parseUplinkFlowLine(NEW_UDP)?.protocol, "udp");
  for (const bad of [
    NEW_TCP.replace("tcp      6", "icmp     1"),
    NEW_TCP.replace(" mark=256", ""),
    NEW_TCP.replace("id=121815946", "id=99999999999"),
    NEW_TCP.replace("id=121815946", "id=12x"),
    "conntrack v1.4.7 (conntrack-tools): 17 flow events have been shown.",
    "",
    "[NEW] tcp " + "x".repeat(2000) + " mark=1 id=2",
  ])
    assert.equal(parseUplinkFlowLine(bad), null, bad.slice(0, 60));
});

// What conntrack 1.4.7 printed in a lab (-o timestamp,id) for a SYN refused with a RST, for an
// unanswered entry deleted with `conntrack -D`, and for an answered connection that ended.
const REFUSED =
  "[DESTROY] tcp      6 120 CLOSE src=192.0.2.1 dst=192.0.2.2 sport=34494 dport=81 [UNREPLIED] src=192.0.2.2 dst=192.0.2.1 sport=81 dport=34494 mark=256 id=512742461";
const DELETED =
  "[DESTROY] tcp      6 118 SYN_SENT src=192.0.2.1 dst=192.0.2.2 sport=47812 dport=82 [UNREPLIED] src=192.0.2.2 dst=192.0.2.1 sport=82 dport=47812 mark=256 id=2691031537 [USERSPACE] portid=3249630731";
const ENDED =
  "[DESTROY] tcp      6 120 CLOSE src=192.0.2.1 dst=192.0.2.2 sport=34494 dport=81 src=192.0.2.2 dst=192.0.2.1 sport=81 dport=34494 mark=256 id=7";

test("conntrack uplink events: DESTROY says whether the kernel closed an entry (a RST) or a tool deleted it", () => {
  assert.deepEqual(parseUplinkFlowLine(`[1796312231.604922]\t${REFUSED}`), {
    type: "destroy",
    protocol: "tcp",
    id: 512742461,
    mark: 256,
    unreplied: true,
    at: 1796312231604.922,
    reset: true,
  });
  assert.equal(parseUplinkFlowLine(DELETED)?.reset, false);
  assert.equal(parseUplinkFlowLine(DELETED)?.unreplied, true);
  assert.equal(parseUplinkFlowLine(REFUSED.replace("CLOSE", "SYN_SENT"))?.reset, false, "timed out");
  assert.equal(parseUplinkFlowLine(REFUSED + " [USERSPACE] portid=1")?.reset, false, "deleted after a RST");
  assert.deepEqual(parseUplinkFlowLine(ENDED), {
    type: "destroy",
    protocol: "tcp",
    id: 7,
    mark: 256,
    unreplied: false,
    reset: true,
  });
  const udp = NEW_UDP.replace("[NEW]", "[DESTROY]");
  assert.equal(parseUplinkFlowLine(udp)?.reset, false);
});

// ---- the tracker ----------------------------------------------------------------------------

const P: UplinkPassiveParams = { suspectAfter: 4, minSilenceMs: 50, timeoutMs: 3000 };
let nextId = 1;
const ev = (
  type: "new" | "update" | "destroy",
  mark: number,
  id: number,
  unreplied = type !== "update",
  reset?: boolean,
): UplinkFlowEvent => ({
  type,
  protocol: "tcp",
  mark,
  id,
  unreplied,
  ...(reset === undefined ? {} : { reset }),
});

function tracker() {
  const t = new UplinkPassive();
  t.configure(
    [
      { name: "isp1", mark: 0x100, params: P },
      { name: "isp2", mark: 0x200, params: P },
    ],
    0xff00,
  );
  /** A connection through `mark` at `at`, answered `after` ms later (never when null). */
  const conn = (mark: number, at: number, after: number | null) => {
    const id = nextId++;
    const armed = t.event(ev("new", mark, id), at);
    if (after !== null) t.event(ev("update", mark, id, false), at + after);
    return { id, armed };
  };
  return { t, conn };
}

test("passive: unanswered new connections in a row make an uplink suspect once the first has waited", () => {
  const { t, conn } = tracker();
  for (let at = 0; at < 1000; at += 20) conn(at % 40 ? 0x200 : 0x100, at, 1);
  assert.deepEqual(t.stats("isp1"), {
    answered: 25,
    unanswered: 0,
    streak: 0,
    suspect: false,
    suspicions: { confirmed: 0, cleared: 0 },
  });
  // isp1 goes silent at 1000; isp2 keeps answering
  let armed = false;
  for (let k = 0; k < 4; k++) {
    armed = conn(0x100, 1000 + 40 * k, null).armed;
    conn(0x200, 1020 + 40 * k, 1);
    if (k < 3) assert.equal(armed, false, `armed after ${k + 1}`);
  }
  assert.equal(armed, true);
  // the 4th left at 1120; the first at 1000 has waited 120 ms ≥ min_silence
  const r = t.check(1121);
  assert.deepEqual(r.suspects, [{ uplink: "isp1", unanswered: 4, silentMs: 121 }]);
  assert.equal(t.stats("isp1")?.suspect, true);
  assert.deepEqual(t.check(1130).suspects, [], "once per suspicion");
  assert.deepEqual(t.check(11_200).suspects, [], "an unsettled suspicion is dropped after 10 s…");
  assert.equal(t.stats("isp1")?.suspect, false);
  t.outcome("isp1", "confirmed", 1180);
  assert.deepEqual(t.stats("isp1")?.suspicions, { confirmed: 1, cleared: 0 });
  assert.equal(t.stats("isp1")?.streak, 0);
});

test("passive: not before min_silence; then at the time check() said", () => {
  const { t, conn } = tracker();
  conn(0x200, 0, 1);
  for (let k = 0; k < 4; k++) conn(0x100, 100 + k, null);
  const early = t.check(104);
  assert.deepEqual(early.suspects, []);
  assert.equal(early.nextAt, 150);
  assert.deepEqual(t.check(149).suspects, []);
  assert.equal(t.check(150).suspects.length, 1);
});

test("passive: an answer ends the streak; the answer time learnt lengthens the wait", () => {
  const { t, conn } = tracker();
  for (let k = 0; k < 10; k++) conn(0x100, k * 10, 200);
  // RFC 6298: srtt 200, rttvar 100 decayed by 3/4 per later sample
  assert.ok(Math.abs((t.waitMs("isp1") ?? 0) - (200 + 4 * 100 * 0.75 ** 9)) < 0.01);
  // answers to retransmitted SYNs (after 1 s) are not learnt
  for (let k = 0; k < 10; k++) conn(0x100, 200 + k * 10, 1000 + k);
  assert.ok(Math.abs((t.waitMs("isp1") ?? 0) - (200 + 4 * 100 * 0.75 ** 9)) < 0.01);
  for (let k = 0; k < 3; k++) conn(0x100, 5000 + k, null);
  conn(0x100, 5003, 5);
  assert.equal(t.stats("isp1")?.streak, 0);
});

test("passive: a refusal (RST to the SYN: the entry's DESTROY, CLOSE, unreplied) answers; a deleted entry does not", () => {
  const { t, conn } = tracker();
  for (let at = 0; at < 400; at += 20) conn(at % 40 ? 0x200 : 0x100, at, 1);
  // isp1's destinations refuse every connection from 400 on; isp2 keeps answering
  for (let k = 0; k < 10; k++) {
    const id = nextId++;
    t.event(ev("new", 0x100, id), 400 + 40 * k);
    assert.equal(t.event(ev("destroy", 0x100, id, true, true), 402 + 40 * k), false);
    conn(0x200, 420 + 40 * k, 1);
  }
  assert.deepEqual(t.check(1000).suspects, []);
  assert.equal(t.stats("isp1")?.streak, 0);
  assert.equal(t.stats("isp1")?.answered, 20);
  assert.equal(t.pendingCount, 0);
  // flushed from user space (a down uplink's entries), or a refusal after the timeout: not answers
  const gone: number[] = [];
  for (let k = 0; k < 4; k++) {
    const id = nextId++;
    gone.push(id);
    t.event(ev("new", 0x100, id), 1000 + k);
    t.event(ev("destroy", 0x100, id, true, false), 1010 + k);
  }
  conn(0x200, 1020, 1);
  assert.equal(t.stats("isp1")?.streak, 4);
  assert.deepEqual(
    t.check(1100).suspects.map((s) => s.uplink),
    ["isp1"],
  );
  t.outcome("isp1", "confirmed", 1110);
  const late = nextId++;
  t.event(ev("new", 0x100, late), 2000);
  t.event(ev("destroy", 0x100, late, true, true), 5001);
  assert.equal(t.stats("isp1")?.answered, 20, "refused only after the 3 s timeout");
  t.check(5002);
  assert.equal(t.stats("isp1")?.unanswered, 5);
});

test("passive: watchAt (read conntrack soon from then on) once a silence may have begun", () => {
  const { t, conn } = tracker();
  // both uplinks answer within 1 ms: nothing to watch
  for (let at = 0; at < 400; at += 20) conn(at % 40 ? 0x200 : 0x100, at, 1);
  assert.equal(t.watchAt(), Infinity);
  // one connection in flight: watch once it has waited half the wait (min_silence 50 ms)
  conn(0x100, 400, null);
  assert.equal(t.watchAt(), 425);
  conn(0x200, 430, 1);
  for (let k = 1; k < 4; k++) conn(0x100, 400 + k, null);
  assert.equal(t.watchAt(), 400, "a streak long enough to be suspect: now");
  assert.equal(t.check(450).suspects.length, 1);
  assert.equal(t.watchAt(), Infinity, "suspect: the re-probe decides now");
  t.outcome("isp1", "confirmed", 460);
  assert.equal(t.watchAt(), Infinity);
});

test("passive: no suspicion while the other uplink that carried traffic is silent too", () => {
  const { t, conn } = tracker();
  for (let k = 0; k < 6; k++) {
    conn(0x100, k * 20, null);
    conn(0x200, k * 20 + 10, null);
  }
  assert.deepEqual(t.check(500).suspects, []);
  // isp2 answers again (an old connection's late answer counts): isp1 alone is silent
  conn(0x200, 510, 1);
  assert.deepEqual(
    t.check(520).suspects.map((s) => s.uplink),
    ["isp1"],
  );
});

test("passive: an idle other uplink does not hold a suspicion back; a down uplink is never suspect", () => {
  const { t, conn } = tracker();
  for (let k = 0; k < 5; k++) conn(0x100, k * 20, null);
  t.setUp("isp1", false);
  assert.deepEqual(t.check(500).suspects, []);
  t.setUp("isp1", true);
  for (let k = 0; k < 5; k++) conn(0x100, 600 + k * 20, null);
  assert.deepEqual(
    t.check(800).suspects.map((s) => s.uplink),
    ["isp1"],
  );
});

test("passive: a cleared suspicion starts afresh and holds the next one back, longer after repeats", () => {
  const { t, conn } = tracker();
  let at = 0;
  const streak = () => {
    for (let k = 0; k < 4; k++) conn(0x100, (at += 10), null);
  };
  streak();
  assert.equal(t.check((at += 60)).suspects.length, 1);
  t.outcome("isp1", "cleared", at);
  const first = at;
  streak();
  const held = t.check((at += 60));
  assert.deepEqual(held.suspects, []);
  assert.equal(held.nextAt, first + 500);
  assert.equal(t.check(first + 500).suspects.length, 1);
  t.outcome("isp1", "cleared", first + 500);
  at = first + 500;
  streak();
  assert.equal(t.check(at + 60).nextAt, first + 500 + 1000, "doubled: a false alarm soon after the last");
  assert.deepEqual(t.stats("isp1")?.suspicions, { confirmed: 0, cleared: 2 });
});

test("passive: connections unanswered for `timeout` count as unanswered, once; unknown marks are ignored", () => {
  const { t, conn } = tracker();
  conn(0x100, 0, null);
  conn(0x100, 10, null);
  conn(0x300, 10, null);
  assert.equal(t.pendingCount, 2);
  t.check(2999);
  assert.equal(t.stats("isp1")?.unanswered, 0);
  t.check(3010);
  assert.equal(t.stats("isp1")?.unanswered, 2);
  t.check(9000);
  assert.equal(t.stats("isp1")?.unanswered, 2);
  assert.equal(t.pendingCount, 0);
  // a mark with foreign bits outside the mask is still isp1's
  t.event(ev("new", 0x10100, 777), 9000);
  assert.equal(t.stats("isp1")?.streak, 3);
});

test("passive config: on by default with its defaults; false turns it off", () => {
  const base = { interface: "wan1", probe: { targets: ["198.18.200.1"] } };
  assert.deepEqual(uplinkPassiveOf(uplinkSchema.parse(base)), {
    suspect_after: 4,
    min_silence: 50,
    timeout: 3000,
    confirm_rounds: 3,
  });
  assert.equal(uplinkPassiveOf(uplinkSchema.parse({ ...base, passive: false })), null);
  assert.equal(
    uplinkPassiveOf(uplinkSchema.parse({ ...base, passive: { suspect_after: 8, min_silence: "100ms" } }))
      ?.min_silence,
    100,
  );
  assert.throws(() => uplinkSchema.parse({ ...base, passive: { suspect_after: 1 } }));
  assert.throws(() => uplinkSchema.parse({ ...base, passive: "yes" }));
});

// ---- the monitor's confirmation ---------------------------------------------------------------

const T = ["198.18.200.1", "198.18.200.2"];

class FakeLinks extends EventEmitter<LinkEvents> implements LinkSource {
  states = new Map<string, LinkState>();
  get(iface: string) {
    return this.states.get(iface);
  }
  set(addresses: Addr[]) {
    const st: LinkState = { iface: "wan1", exists: true, adminUp: true, carrier: true, addresses };
    this.states.set(st.iface, st);
    this.emit("link", st);
  }
}
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

async function monitor(probe: Record<string, unknown> = {}) {
  const clock = new ManualClock(0);
  const { spawn, procs } = fakeSpawn();
  const links = new FakeLinks();
  const u = uplinkSchema.parse({ interface: "wan1", gateway: "100.64.1.1", probe: { targets: T, ...probe } });
  const m = createUplinkMonitor("isp1", u, { clock, spawn, link: links });
  const changes: UplinkObservation[] = [];
  const passive: PassiveOutcome[] = [];
  m.on("change", (o) => changes.push(o));
  m.on("passive", (o) => passive.push(o));
  m.start();
  links.set([parseAddr("100.64.1.2") as Addr]);
  await settle();
  const loop = procs[0];
  // enough answered rounds for the overdue time (suspect.ts: 5 rounds)
  for (let s = 0; s < 6; s++) {
    clock.advance(200);
    for (const t of T) loop?.line(`${t} : [${s}], 64 bytes, 0.50 ms (0.5 avg, 0% loss)`);
  }
  return { clock, procs, m, changes, passive };
}

const check = { evidence: () => "6 of 6 new connections unanswered for 150 ms" };

test("monitor: a passive suspicion confirmed by the re-probe takes the uplink down with the reason", async () => {
  const { procs, m, changes, passive } = await monitor();
  assert.equal(m.passiveSuspect?.(check), true);
  assert.equal(m.passiveSuspect?.(check), false, "one at a time");
  const burst = procs[1];
  assert.ok(burst, "a re-probe was spawned");
  const argv = burst.argv.join(" ");
  assert.match(argv, /-c 3 -p 10 -t 20 /);
  assert.match(argv, /-I wan1 -S 100\.64\.1\.2 198\.18\.200\.1 198\.18\.200\.2$/);
  for (let i = 0; i < 3; i++) for (const t of T) burst.line(`${t} : [${i}], timed out (NaN avg, 100% loss)`);
  burst.exit(1);
  await settle();
  assert.deepEqual(
    passive.map((p) => p.result),
    ["suspect", "confirmed"],
  );
  assert.match(passive[0]?.reason ?? "", /re-probing: 3 round\(s\) 10 ms apart, 20 ms each$/);
  assert.equal(changes.length, 1);
  assert.equal(changes[0]?.state, "down");
  assert.equal(
    changes[0]?.reason,
    "passive: 6 of 6 new connections unanswered for 150 ms, confirmed by probe (3 re-probe rounds without an answer within 20 ms)",
  );
  assert.equal(m.passiveSuspect?.(check), false, "not while down");
  await m.stop();
});

test("monitor: one answered re-probe round clears the suspicion; the uplink stays up", async () => {
  const { procs, m, changes, passive } = await monitor();
  assert.equal(m.passiveSuspect?.(check), true);
  const burst = procs[1];
  burst?.line(
    `${T[0]} : [0], timed out (NaN avg, 100% loss)`,
    `${T[1]} : [0], timed out (NaN avg, 100% loss)`,
  );
  burst?.line(
    `${T[0]} : [1], 64 bytes, 0.6 ms (0.6 avg, 50% loss)`,
    `${T[1]} : [1], timed out (NaN avg, 100% loss)`,
  );
  burst?.line(
    `${T[0]} : [2], timed out (NaN avg, 100% loss)`,
    `${T[1]} : [2], timed out (NaN avg, 100% loss)`,
  );
  burst?.exit(1);
  await settle();
  assert.deepEqual(
    passive.map((p) => p.result),
    ["suspect", "cleared"],
  );
  assert.match(passive[1]?.reason ?? "", /; but re-probe 2\/3: 1\/2 answered, median 0\.60 ms$/);
  assert.deepEqual(changes, []);
  assert.equal(m.passiveSuspect?.(check), true, "a later suspicion is taken up again");
  await m.stop();
});

test("monitor: off with passive: false; a killed re-probe says nothing about the link", async () => {
  const off = await monitor();
  await off.m.stop();
  const u = uplinkSchema.parse({ interface: "wan1", probe: { targets: T }, passive: false });
  const m = createUplinkMonitor("isp1", u, { clock: new ManualClock(0), spawn: fakeSpawn().spawn });
  m.start();
  assert.equal(m.passiveSuspect?.(check), false);
  await m.stop();

  const { procs, m: m2, changes, passive } = await monitor();
  assert.equal(m2.passiveSuspect?.(check), true);
  procs[1]?.exit(null, "", "SIGKILL");
  await settle();
  assert.deepEqual(
    passive.map((p) => p.result),
    ["suspect", "cleared"],
  );
  assert.deepEqual(changes, []);
  await m2.stop();
});

// ---- the daemon's watcher -------------------------------------------------------------------

test("daemon watcher: conntrack runs while ≥ 2 uplinks are watched; a silent one is handed to its monitor", async () => {
  const { UplinkPassiveWatch } = await import("../../src/daemon/uplink-passive.ts");
  const { Registry } = await import("prom-client");
  const { configSchema } = await import("../../src/config/schema.ts");
  const { spawn, procs } = fakeSpawn();
  let now = 0;
  const asked: string[] = [];
  const log = { info() {}, warn() {}, error() {}, debug() {} };
  const registry = new Registry();
  const w = new UplinkPassiveWatch(
    {
      log,
      suspect: (name, c) => {
        asked.push(`${name}: ${c.evidence()}`);
        return true;
      },
    },
    { spawn, now: () => now, registry },
  );
  const cfg = (second: boolean) =>
    configSchema.parse({
      version: 1,
      uplinks: {
        isp1: { interface: "wan1" },
        isp2: { interface: "wan2", passive: second },
      },
    });
  const marks = new Map([
    ["isp1", 0x100],
    ["isp2", 0x200],
  ]);
  w.start();
  w.configure(configSchema.parse({ version: 1, uplinks: { isp1: { interface: "wan1" } } }), marks);
  assert.equal(procs.length, 0, "one uplink: nothing to compare with");
  w.configure(cfg(false), marks);
  assert.equal(procs.length, 1);
  assert.deepEqual(procs[0]?.argv, uplinkEventsArgv());
  const p = procs[0];
  const line = (type: "NEW" | "UPDATE", mark: number, id: number) =>
    `[${type}] tcp 6 120 SYN_SENT src=198.18.0.2 dst=203.0.113.10 sport=1 dport=2 ${type === "NEW" ? "[UNREPLIED] " : ""}src=203.0.113.10 dst=100.64.1.2 sport=2 dport=1 mark=${mark} id=${id}`;
  p?.line(line("NEW", 0x200, 1), line("UPDATE", 0x200, 1));
  for (let k = 0; k < 4; k++) p?.line(line("NEW", 0x100, 10 + k));
  now = 100;
  await new Promise((r) => setTimeout(r, 80));
  assert.deepEqual(asked, ["isp1: 4 of 4 new connections unanswered for 100 ms"]);
  assert.equal(w.stats("isp1")?.suspect, true);
  w.outcome({ name: "isp1", result: "confirmed", reason: "x" });
  assert.equal(w.stats("isp1")?.suspect, false);
  assert.match(
    await registry.metrics(),
    /nflb_uplink_passive_suspicions_total\{uplink="isp1",outcome="confirmed"\} 1/,
  );
  assert.match(await registry.metrics(), /nflb_uplink_passive_answered_total\{uplink="isp2"\} 1/);
  // passive off everywhere: conntrack is stopped
  w.configure(
    configSchema.parse({
      version: 1,
      uplinks: { isp1: { interface: "wan1", passive: false }, isp2: { interface: "wan2", passive: false } },
    }),
    marks,
  );
  await settle();
  assert.equal(p?.alive, false);
  await w.stop();
});

test("daemon watcher: conntrack is read every 25 ms while calm; every 100 ms only with conntrack_events: minimal", async () => {
  const { UplinkPassiveWatch } = await import("../../src/daemon/uplink-passive.ts");
  const { configSchema } = await import("../../src/config/schema.ts");
  const log = { info() {}, warn() {}, error() {}, debug() {} };
  const marks = new Map([
    ["isp1", 0x100],
    ["isp2", 0x200],
  ]);
  const reads = async (events: "all" | "minimal") => {
    mock.timers.enable({ apis: ["setTimeout", "setInterval", "setImmediate", "Date"], now: 1_000_000 });
    try {
      let polls = 0;
      let id = 0;
      const { spawn } = fakeSpawn();
      // Each read finds a connection of each uplink, answered: calm, but never idle.
      const polled: typeof spawn = (argv, onLine) => {
        const p = spawn(argv, onLine);
        return Object.assign(p, {
          poll() {
            polls++;
            for (const mark of [0x100, 0x200]) {
              id++;
              const tail = `src=203.0.113.10 dst=100.64.1.2 sport=2 dport=1 mark=${mark} id=${id}`;
              onLine(
                `[NEW] tcp 6 120 SYN_SENT src=198.18.0.2 dst=203.0.113.10 sport=1 dport=2 [UNREPLIED] ${tail}`,
              );
              onLine(`[UPDATE] tcp 6 60 SYN_RECV src=198.18.0.2 dst=203.0.113.10 sport=1 dport=2 ${tail}`);
            }
          },
        });
      };
      const w = new UplinkPassiveWatch({ log, suspect: () => true }, { spawn: polled });
      w.start();
      w.configure(
        configSchema.parse({
          version: 1,
          uplinks: { isp1: { interface: "wan1" }, isp2: { interface: "wan2" } },
          balance: { conntrack_events: events },
        }),
        marks,
      );
      for (let t = 0; t < 1000; t += 5) mock.timers.tick(5);
      await w.stop();
      return polls;
    } finally {
      mock.timers.reset();
    }
  };
  const all = await reads("all");
  const minimal = await reads("minimal");
  assert.ok(all >= 38 && all <= 42, `default: ${all} reads in 1 s`);
  assert.ok(minimal >= 9 && minimal <= 11, `minimal: ${minimal} reads in 1 s`);
});
