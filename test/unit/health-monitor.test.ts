import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { uplinkSchema } from "../../src/config/schema.ts";
import { FpingProber } from "../../src/health/fping.ts";
import type { LinkEvents, LinkSource, LinkState } from "../../src/health/link-watch.ts";
import { ManualClock } from "../../src/health/probe-clock.ts";
import { fakeSpawn } from "../../testkit/probe-fakes.ts";
import { InProcessProber } from "../../src/health/probe-inprocess.ts";
import type { UplinkObservation } from "../../src/health/types.ts";
import { buildProber, createUplinkMonitor } from "../../src/health/uplink-monitor.ts";
import { parseAddr, type Addr } from "../../src/net/ip.ts";

const T = ["198.18.200.1", "198.18.200.2"];
const uplink = uplinkSchema.parse({ interface: "wan1", gateway: "100.64.1.1", probe: { targets: T } });

class FakeLinks extends EventEmitter<LinkEvents> implements LinkSource {
  states = new Map<string, LinkState>();
  get(iface: string) {
    return this.states.get(iface);
  }
  set(s: Partial<LinkState> & { addresses?: Addr[] }) {
    const st: LinkState = { iface: "wan1", exists: true, adminUp: true, carrier: true, addresses: [], ...s };
    this.states.set(st.iface, st);
    this.emit("link", st);
  }
}
const A = (s: string) => parseAddr(s) as Addr;
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

function setup(opts: { link?: boolean } = {}) {
  const clock = new ManualClock(0);
  const { spawn, procs } = fakeSpawn();
  const links = new FakeLinks();
  const m = createUplinkMonitor("isp1", uplink, {
    clock,
    spawn,
    ...(opts.link === false ? { addresses: ["100.64.1.2"] } : { link: links }),
  });
  const changes: UplinkObservation[] = [];
  const rounds: UplinkObservation[] = [];
  m.on("change", (o) => changes.push(o));
  m.on("round", (o) => rounds.push(o));
  return { clock, procs, links, m, changes, rounds };
}

test("probes start when the link watcher knows the addresses; silence takes the uplink down", async () => {
  const { clock, procs, links, m, changes, rounds } = setup();
  m.start();
  assert.equal(procs.length, 0, "waits for the link state");
  links.set({ addresses: [A("100.64.1.2")] });
  await settle();
  assert.equal(procs.length, 1);
  assert.ok(procs[0]?.argv.includes("-I") && procs[0]?.argv.includes("100.64.1.2"));
  assert.equal(m.snapshot().state, "up");
  const p = procs[0];
  clock.advance(1);
  for (const t of T) p?.line(`${t} : [0], 64 bytes, 2.0 ms (2 avg, 0% loss)`);
  assert.equal(rounds.length, 1);
  assert.equal(m.snapshot().rttMs, 2);
  // three rounds time out: fping prints the timeouts 500 ms after each send
  for (const s of [1, 2, 3]) {
    clock.advance(200);
    for (const t of T) p?.line(`${t} : [${s}], timed out (2 avg, 50% loss)`);
  }
  assert.equal(changes.length, 1);
  assert.equal(changes[0]?.state, "down");
  assert.equal(changes[0]?.reason, "3 rounds without an answer from 198.18.200.1, 198.18.200.2");
  await m.stop();
});

test("carrier loss is down at once; back up only after up_after rounds sent after the carrier returned", async () => {
  const { clock, procs, links, m, changes } = setup();
  m.start();
  links.set({ addresses: [A("100.64.1.2")] });
  await settle();
  const p = procs[0];
  let seq = 0;
  const answer = (n: number) => {
    for (let i = 0; i < n; i++, seq++) {
      clock.advance(200);
      for (const t of T) p?.line(`${t} : [${seq}], 64 bytes, 2.0 ms (2 avg, 0% loss)`);
    }
  };
  answer(5);
  links.set({ carrier: false, addresses: [A("100.64.1.2")] });
  assert.deepEqual(
    changes.map((c) => [c.state, c.reason]),
    [["down", "carrier lost on wan1"]],
  );
  await settle();
  assert.equal(procs.length, 1, "same address: fping keeps running");
  // fping's probes 5, 6, 7 wait in the device queue while there is no carrier…
  clock.advance(600);
  links.set({ carrier: true, addresses: [A("100.64.1.2")] });
  // …and are answered when it returns, with the wait in their RTT
  for (const [i, rtt] of [402, 202, 2].entries())
    for (const t of T) p?.line(`${t} : [${seq + i}], 64 bytes, ${rtt} ms (99 avg, 50% loss)`);
  seq += 3;
  answer(9);
  assert.deepEqual(
    changes.map((c) => [c.state, c.reason]).slice(1),
    [["down", "wan1 usable again: waiting for good probe rounds"]],
    "answers to probes sent before the carrier came back do not count",
  );
  answer(1);
  assert.equal(changes.length, 3);
  assert.equal(changes[2]?.state, "up");
  assert.equal(m.snapshot().rttMs, 2, "nor do their RTTs");
  await m.stop();
});

test("a new address restarts fping from it; no address stops it and rounds fail", async () => {
  const { clock, procs, links, m, changes, rounds } = setup();
  m.start();
  links.set({ addresses: [A("100.64.1.2")] });
  await settle();
  links.set({ addresses: [] });
  assert.equal(changes[0]?.reason, "no address on wan1");
  await settle();
  assert.deepEqual(procs[0]?.signals, ["SIGTERM"]);
  assert.equal(procs.length, 1, "nothing to bind to: no fping");
  clock.advance(1000);
  assert.ok(rounds.length >= 4 && rounds.every((r) => r.loss === 1));
  links.set({ addresses: [A("100.64.1.9")] });
  await settle();
  assert.equal(procs.length, 2);
  assert.ok(procs[1]?.argv.includes("100.64.1.9"));
  await m.stop();
  assert.deepEqual(procs[1]?.signals, ["SIGTERM"]);
  const n = rounds.length;
  clock.advance(2000);
  links.set({ carrier: false });
  assert.equal(rounds.length, n, "nothing after stop");
  assert.deepEqual(
    changes.map((c) => c.reason),
    ["no address on wan1", "wan1 usable again: waiting for good probe rounds"],
  );
});

test("without a link watcher the given addresses are used", async () => {
  const { procs, m } = setup({ link: false });
  m.start();
  await settle();
  assert.equal(procs.length, 1);
  assert.ok(procs[0]?.argv.includes("100.64.1.2"));
  await m.stop();
});

test("an uplink without probe targets follows link events only", async () => {
  const links = new FakeLinks();
  const { spawn, procs } = fakeSpawn();
  const m = createUplinkMonitor("isp2", uplinkSchema.parse({ interface: "wan1" }), { link: links, spawn });
  const changes: string[] = [];
  m.on("change", (o) => changes.push(`${o.state}: ${o.reason}`));
  m.start();
  links.set({ addresses: [A("100.64.1.2")] });
  links.set({ carrier: false, addresses: [A("100.64.1.2")] });
  await settle();
  assert.equal(procs.length, 0);
  assert.deepEqual(changes, ["down: carrier lost on wan1"]);
  await m.stop();
});

test("an uplink without probe targets is back up as soon as its link is usable again", async () => {
  const links = new FakeLinks();
  const m = createUplinkMonitor("vpn", uplinkSchema.parse({ interface: "tun1" }), { link: links });
  const changes: string[] = [];
  m.on("change", (o) => changes.push(`${o.state}: ${o.reason}`));
  m.start();
  links.set({ iface: "tun1", exists: false, adminUp: false, carrier: false });
  links.set({ iface: "tun1", addresses: [A("100.64.9.2")] });
  assert.deepEqual(changes, ["down: interface tun1 not present", "up: link usable (no probe targets)"]);
  await m.stop();
});

test("an absent interface is down with its reason; when it appears it is probed and up after up_after rounds", async () => {
  const { clock, procs, links, m, changes } = setup();
  m.start();
  links.set({ exists: false, adminUp: false, carrier: false });
  assert.deepEqual(
    changes.map((c) => [c.state, c.reason]),
    [["down", "interface wan1 not present"]],
  );
  await settle();
  assert.equal(procs.length, 0, "nothing to probe through");
  links.set({ addresses: [A("100.64.1.2")] });
  await settle();
  assert.equal(procs.length, 1);
  const p = procs[0];
  for (let seq = 0; seq < 10; seq++) {
    clock.advance(200);
    for (const t of T) p?.line(`${t} : [${seq}], 64 bytes, 2.0 ms (2 avg, 0% loss)`);
  }
  assert.deepEqual(changes.map((c) => [c.state, c.reason]).slice(0, 2), [
    ["down", "interface wan1 not present"],
    ["down", "wan1 usable again: waiting for good probe rounds"],
  ]);
  assert.equal(changes.at(-1)?.state, "up");
  assert.equal(changes.length, 3);
  links.set({ exists: false, adminUp: false, carrier: false });
  assert.equal(changes.at(-1)?.reason, "interface wan1 not present");
  await m.stop();
});

test("gateway: auto is down until a gateway is learned; a new lease is announced as `link`", async () => {
  const clock = new ManualClock(0);
  const { spawn } = fakeSpawn();
  const links = new FakeLinks();
  const auto = uplinkSchema.parse({ interface: "wan1", gateway: "auto", probe: { targets: T } });
  const m = createUplinkMonitor("dhcp", auto, { clock, spawn, link: links });
  const changes: string[] = [];
  const leases: string[] = [];
  m.on("change", (o) => changes.push(`${o.state}: ${o.reason}`));
  m.on("link", (o) => leases.push(o.name));
  m.start();
  links.set({ addresses: [A("100.64.1.2")] });
  assert.deepEqual(changes, ["down: no IPv4 gateway learned on wan1"]);
  links.set({
    addresses: [A("100.64.1.2")],
    gw4: { refused: "IPv4 gateway 203.0.113.1 on wan1 is outside" },
  });
  assert.equal(leases.length, 1);
  assert.equal(changes.at(-1), "down: IPv4 gateway 203.0.113.1 on wan1 is outside", "the reason follows");
  links.set({ addresses: [A("100.64.1.2")], gw4: { gw: "100.64.1.1" } });
  assert.equal(leases.length, 2);
  links.set({ addresses: [A("100.64.1.150")], gw4: { gw: "100.64.1.254" } });
  assert.equal(leases.length, 3, "a new address and gateway: the daemon re-plans");
  links.set({ addresses: [A("100.64.1.150")], gw4: { gw: "100.64.1.254" } });
  assert.equal(leases.length, 3, "the same lease again: nothing");
  await m.stop();
});

test("the probe method picks the prober", () => {
  const sink = () => undefined;
  const mk = (method: string) =>
    buildProber(uplinkSchema.parse({ interface: "wan1", probe: { method, targets: T } }), sink, {});
  assert.ok(mk("icmp") instanceof FpingProber);
  for (const m of ["tcp", "http", "dns"]) assert.ok(mk(m) instanceof InProcessProber, m);
});

// Issue 14: the prober's own failures are not the link's.
test("fping crashing in a loop: restarted with backoff, the uplink stays up, probe_error says why", async () => {
  const { clock, procs, m, changes, rounds } = setup({ link: false });
  m.start();
  await settle();
  clock.advance(1);
  for (const t of T) procs[0]?.line(`${t} : [0], 64 bytes, 2.0 ms (2 avg, 0% loss)`);
  const starts: number[] = [];
  for (let k = 0; k < 4; k++) {
    procs[procs.length - 1]?.exit(139, "Segmentation fault\n");
    await settle();
    const n = procs.length;
    while (procs.length === n && clock.now() < 60_000) clock.advance(100);
    starts.push(clock.now());
  }
  assert.deepEqual(changes, [], "no transition while fping keeps crashing");
  assert.equal(m.snapshot().state, "up");
  assert.match(m.snapshot().probeError ?? "", /^fping exited 139: Segmentation fault; restarting/);
  assert.ok(rounds.length > 10, "rounds went on (unprobed)");
  const gaps = starts.slice(1).map((t, i) => t - (starts[i] as number));
  assert.ok(
    gaps.every((g, i) => i === 0 || g > (gaps[i - 1] as number)),
    `backoff grows: ${gaps.join(",")}`,
  );
  // A working fping again: probe_error clears at its first round.
  const p = procs[procs.length - 1];
  clock.advance(1);
  for (const t of T) p?.line(`${t} : [0], 64 bytes, 2.0 ms (2 avg, 0% loss)`);
  assert.equal(m.snapshot().probeError, null);
  await m.stop();
});

test("fping printing garbage is killed and restarted; its rounds count for nothing", async () => {
  const { clock, procs, m, changes } = setup({ link: false });
  m.start();
  await settle();
  clock.advance(1);
  for (const t of T) procs[0]?.line(`${t} : [0], 64 bytes, 2.0 ms (2 avg, 0% loss)`);
  for (let k = 0; k < 10; k++) {
    clock.advance(200);
    if (!procs[0]?.alive) break;
    procs[0].line("\u0000\u0001 #garbage# 42");
  }
  await settle();
  assert.deepEqual(procs[0]?.signals, ["SIGKILL"]);
  assert.match(m.snapshot().probeError ?? "", /unreadable line/);
  clock.advance(5000);
  assert.ok(procs.length >= 2, "restarted");
  assert.deepEqual(changes, []);
  await m.stop();
});

test("a silent fping is restarted once without counting; silent again, the silence counts (sendto refused)", async () => {
  const { clock, procs, m, changes } = setup({ link: false });
  m.start();
  await settle();
  clock.advance(1);
  for (const t of T) procs[0]?.line(`${t} : [0], 64 bytes, 2.0 ms (2 avg, 0% loss)`);
  // It stops printing (a hang): the first round that ends with no report at all restarts it.
  clock.advance(2000);
  await settle();
  assert.deepEqual(procs[0]?.signals, ["SIGKILL"]);
  assert.match(m.snapshot().probeError ?? "", /printed nothing .*stalled/);
  assert.equal(changes.length, 0, "the stall did not take the uplink down");
  // The restarted one is silent too: that is not a hang any more, the rounds are lost.
  clock.advance(5000);
  await settle();
  assert.equal(procs.length, 2);
  assert.equal(procs[1]?.signals.length, 0, "not killed again");
  assert.equal(changes.length, 1);
  assert.equal(changes[0]?.state, "down");
  await m.stop();
});
