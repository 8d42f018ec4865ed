import { test } from "node:test";
import assert from "node:assert/strict";
import { LinkWatcher, linkProblem, parseLinks, type LinkState } from "../../src/health/link-watch.ts";
import { ManualClock } from "../../src/health/probe-clock.ts";
import { fakeSpawn } from "../../testkit/probe-fakes.ts";

// Shaped like `ip -j addr show` on iproute2 6.1 (trimmed).
function ipJson(
  o: { carrier?: boolean; up?: boolean; v4?: string[]; tentative6?: string; extra?: boolean } = {},
) {
  const flags = ["BROADCAST", "MULTICAST"];
  if (o.up ?? true) flags.push("UP");
  if (o.carrier ?? true) flags.push("LOWER_UP");
  else flags.unshift("NO-CARRIER");
  const addr_info: Record<string, unknown>[] = (o.v4 ?? ["100.64.1.2"]).map((local) => ({
    family: "inet",
    local,
    prefixlen: 24,
    scope: "global",
  }));
  addr_info.push({ family: "inet6", local: "fe80::1", prefixlen: 64, scope: "link" });
  if (o.tentative6)
    addr_info.push({ family: "inet6", local: o.tentative6, scope: "global", tentative: true });
  const links = [
    { ifindex: 1, ifname: "lo", flags: ["LOOPBACK", "UP", "LOWER_UP"], addr_info: [] },
    { ifindex: 2, ifname: "wan1", flags, addr_info },
  ];
  if (o.extra) links.push({ ifindex: 3, ifname: "wan2", flags: ["UP", "LOWER_UP"], addr_info: [] });
  return JSON.stringify(links);
}

test("parseLinks: flags, global usable addresses only, missing interfaces", () => {
  const m = parseLinks(ipJson({ v4: ["100.64.1.2"], tentative6: "2001:db8::5" }), ["wan1", "wan9"]);
  assert.deepEqual(m.get("wan1"), {
    iface: "wan1",
    exists: true,
    adminUp: true,
    carrier: true,
    addresses: [{ family: 4, text: "100.64.1.2" }],
  });
  assert.deepEqual(m.get("wan9"), {
    iface: "wan9",
    exists: false,
    adminUp: false,
    carrier: false,
    addresses: [],
  });
  assert.equal(m.size, 2);
  const down = parseLinks(ipJson({ carrier: false }), ["wan1"]).get("wan1") as LinkState;
  assert.equal(down.carrier, false);
  assert.equal(down.adminUp, true);
});

test("linkProblem says what is wrong, in words", () => {
  const ok: LinkState = { iface: "wan1", exists: true, adminUp: true, carrier: true, addresses: [] };
  assert.equal(linkProblem({ ...ok, addresses: [{ family: 4, text: "100.64.1.2" }] }), null);
  assert.equal(linkProblem(ok), "no address on wan1");
  assert.equal(linkProblem({ ...ok, carrier: false }), "carrier lost on wan1");
  assert.equal(linkProblem({ ...ok, adminUp: false }), "wan1 is administratively down");
  assert.equal(linkProblem({ ...ok, exists: false }), "interface wan1 not present");
});

function setup() {
  const clock = new ManualClock(0);
  const { spawn, procs } = fakeSpawn();
  let json = ipJson();
  let reads = 0;
  let carrierChanges = "2";
  let counterReads = 0;
  let awake: (() => void) | undefined;
  const w = new LinkWatcher(["wan1"], {
    clock,
    spawn,
    readLinks: async () => {
      reads++;
      return json;
    },
    readCarrierChanges: (iface) => {
      counterReads++;
      return iface === "wan1" ? carrierChanges : null;
    },
    resyncMs: 5000,
    carrierCheckMs: 100,
    onAwake: (fn) => {
      awake = fn;
      return () => (awake = undefined);
    },
  });
  const events: LinkState[] = [];
  w.on("link", (s) => events.push(s));
  return {
    clock,
    procs,
    w,
    events,
    set: (j: string) => (json = j),
    flapCounter: () => (carrierChanges = String(Number(carrierChanges) + 1)),
    reads: () => reads,
    counterReads: () => counterReads,
    /** Helper output arrived (the process is awake anyway). */
    awake: () => awake?.(),
    subscribed: () => awake !== undefined,
  };
}
const settle = () => new Promise((r) => setImmediate(r));

test("start runs one `ip monitor label link address route` and reads the state once", async () => {
  const { procs, w, events, reads } = setup();
  await w.start();
  assert.deepEqual(
    procs.map((p) => p.argv),
    [["ip", "monitor", "label", "link", "address", "route"]],
  );
  assert.equal(reads(), 1);
  assert.equal(events.length, 1);
  assert.equal(w.get("wan1")?.carrier, true);
  await w.stop();
  assert.deepEqual(procs[0]?.signals, ["SIGTERM"]);
});

test("an event line triggers a re-read; only real changes are emitted; bursts coalesce", async () => {
  const { clock, procs, w, events, set, reads } = setup();
  await w.start();
  set(ipJson({ carrier: false }));
  procs[0]?.line(
    "2: wan1@if2: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN group default ",
    "    link/ether f2:fe:7f:cd:0a:4d brd ff:ff:ff:ff:ff:ff link-netns isp1",
    "Deleted 2: wan1    inet6 2001:db8::9/64 scope global",
  );
  clock.advance(5);
  await settle();
  assert.equal(reads(), 2, "one read for the burst");
  assert.equal(events.length, 2);
  assert.equal(events[1]?.carrier, false);
  // an event for another interface: re-read, nothing changed for wan1
  procs[0]?.line("3: wan2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500");
  clock.advance(5);
  await settle();
  assert.equal(reads(), 3);
  assert.equal(events.length, 2);
  await w.stop();
});

test("a resync catches what no event announced; a dead `ip monitor` is restarted", async () => {
  const { clock, procs, w, events, set } = setup();
  await w.start();
  set(ipJson({ v4: [] }));
  clock.advance(5000);
  await settle();
  assert.deepEqual(events[1]?.addresses, []);
  procs[0]?.exit(1, "ip: something broke\n");
  await settle();
  clock.advance(1000);
  assert.equal(procs.length, 2);
  assert.deepEqual(procs[1]?.argv, ["ip", "monitor", "label", "link", "address", "route"]);
  await w.stop();
});

test("interface names are validated before they are used", () => {
  assert.throws(() => new LinkWatcher(["wan1; reboot"]));
});

test("a carrier change the kernel has not announced yet is caught by the sysfs counter check", async () => {
  const { clock, w, events, set, reads, flapCounter, counterReads } = setup();
  await w.start();
  clock.advance(300);
  await settle();
  assert.equal(reads(), 1, "an unchanged counter costs no re-read");
  assert.equal(counterReads(), 4, "with no helper output, the timer checks every 100 ms");
  set(ipJson({ carrier: false }));
  flapCounter();
  clock.advance(100); // next check sees the counter move
  await settle();
  clock.advance(5); // debounce
  await settle();
  assert.equal(reads(), 2);
  assert.equal(events[events.length - 1]?.carrier, false);
  await w.stop();
});

test("checks ride on helper output; the timer then slows to a safety net, and speeds up again", async () => {
  const { clock, w, events, set, reads, flapCounter, counterReads, awake, subscribed } = setup();
  const timers: number[] = []; // the delays of the timers set from now on
  const setTimeout = clock.setTimeout.bind(clock);
  clock.setTimeout = (fn, ms) => (timers.push(ms), setTimeout(fn, ms));
  await w.start();
  assert.ok(subscribed());
  // Helper output every 200 ms (fping's default rounds), a few chunks each time: one check per round.
  const output = (ms: number) => {
    for (let t = 0; t < ms; t += 200) {
      clock.advance(200);
      for (let k = 0; k < 4; k++) awake();
    }
  };
  output(1000);
  const before = counterReads();
  timers.length = 0;
  output(3000);
  const checks = counterReads() - before;
  assert.equal(checks, 15, "one check per round");
  assert.deepEqual(timers, [1000, 1000, 1000], "the check timer ran once a second");
  // A carrier flap is seen at the next output-driven check.
  set(ipJson({ carrier: false }));
  flapCounter();
  output(200);
  clock.advance(5);
  await settle();
  assert.equal(reads(), 2);
  assert.equal(events.at(-1)?.carrier, false);
  // Output stops: the slow timer notices within ~1.25 s and goes back to 100 ms checks.
  clock.advance(1250);
  const quiet = counterReads();
  clock.advance(500);
  assert.equal(counterReads() - quiet, 5);
  await w.stop();
  assert.ok(!subscribed(), "stop unsubscribes");
});

test("carrierCheckMs 0: events and resyncs only", async () => {
  const clock = new ManualClock(0);
  const { spawn } = fakeSpawn();
  let counterReads = 0;
  const w = new LinkWatcher(["wan1"], {
    clock,
    spawn,
    readLinks: async () => ipJson(),
    readCarrierChanges: () => String(++counterReads),
    carrierCheckMs: 0,
    onAwake: () => assert.fail("no subscription without checks"),
  });
  await w.start();
  clock.advance(1000);
  assert.equal(counterReads, 0);
  assert.equal(clock.pending, 1, "only the resync timer");
  await w.stop();
});

test("default-route events trigger reads only while a gateway is learned; the routes are read then", async () => {
  const { clock, procs, w, reads } = setup();
  await w.start();
  const before = reads();
  procs[0]?.line("[ROUTE]default via 100.64.1.1 dev wan1");
  clock.advance(10);
  await settle();
  assert.equal(reads(), before, "no gateway learned: route events are not ours");
  w.watch("wan1", { gateways: true });
  clock.advance(10);
  await settle();
  const learning = reads();
  assert.equal(learning, before + 1, "learning starts with a read");
  procs[0]?.line("[ROUTE]10.0.0.0/8 dev wan1");
  clock.advance(10);
  await settle();
  assert.equal(reads(), learning, "not a default route");
  procs[0]?.line("[ROUTE]Deleted default via 100.64.1.1 dev wan1");
  clock.advance(10);
  await settle();
  assert.equal(reads(), learning + 1);
  await w.stop();
});
