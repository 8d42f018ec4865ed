// The services' live flows: conntrack event lines → open connections per backend and handshake
// outcomes (flow-table), the supervised event stream with its resync (flow-monitor, fake
// processes), and passive health's window (passive).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { passiveOf } from "../../src/config/schema.ts";
import { parseFlowLine, type FlowEvent } from "../../src/system/conntrack-events.ts";
import { FlowTable, type FlowOutcome } from "../../src/health/flow-table.ts";
import { ConntrackFlowMonitor } from "../../src/health/flow-monitor.ts";
import { PassiveHealth } from "../../src/health/passive.ts";
import type { LineProcess, SpawnLines } from "../../src/health/probe-process.ts";

const WEB = "tcp 203.0.113.10 80";
const line = (type: string, id: number, state: string, backend = "198.51.100.11", extra = "") =>
  `${type} tcp      6 120 ${state} src=198.18.0.2 dst=203.0.113.10 sport=${40000 + id} dport=80 ${extra} src=${backend} dst=198.18.0.2 sport=80 dport=${40000 + id} id=${id}`;
const ev = (l: string) => parseFlowLine(l) as FlowEvent;

test("conntrack event and list lines parse into service, backend, state and id", () => {
  assert.deepEqual(parseFlowLine(line("    [NEW]", 7, "SYN_SENT", "198.51.100.11", "[UNREPLIED]")), {
    type: "new",
    id: 7,
    protocol: "tcp",
    state: "SYN_SENT",
    service: WEB,
    backend: "198.51.100.11:80",
  });
  const v6 =
    "tcp      6 96 ESTABLISHED src=2001:db8:1::5 dst=2001:db8:203::10 sport=1001 dport=80 src=2001:0db8:51::b dst=2001:db8:1::5 sport=80 dport=1001 mark=0 use=1 id=3916606598";
  assert.deepEqual(parseFlowLine(v6), {
    type: "list",
    id: 3916606598,
    protocol: "tcp",
    state: "ESTABLISHED",
    service: "tcp 2001:db8:203::10 80",
    backend: "[2001:db8:51::b]:80",
  });
  const udp =
    " [DESTROY] udp      17 src=198.18.0.2 dst=203.0.113.10 sport=40053 dport=53 src=198.51.100.15 dst=198.18.0.2 sport=53 dport=40053 id=12 [USERSPACE] portid=1 progname=conntrack";
  assert.equal(parseFlowLine(udp)?.backend, "198.51.100.15:53");
  assert.equal(parseFlowLine(udp)?.state, null);
  for (const junk of [
    "conntrack v1.4.7 (conntrack-tools): 5 flow entries have been shown.",
    "NOTICE: Netlink socket buffer size has been set to 8388608 bytes.",
    "icmp     1 29 src=198.18.0.2 dst=203.0.113.10 type=8 code=0 id=1 src=198.51.100.11 dst=198.18.0.2 type=0 code=0 id=1",
    line("[NEW]", 1, "SYN_SENT").replace("id=1", "id=x"),
    line("[NEW]", 1, "SYN_SENT") + " " + "x".repeat(2000),
    "",
  ])
    assert.equal(parseFlowLine(junk), null, junk);
});

test("open connections per backend follow NEW, UPDATE and DESTROY; closing states do not count", () => {
  const t = new FlowTable();
  const outcomes: (FlowOutcome | null)[] = [];
  const apply = (l: string) => outcomes.push(t.apply(ev(l), 0));
  apply(line("[NEW]", 1, "SYN_SENT"));
  apply(line("[NEW]", 2, "SYN_SENT", "198.51.100.12"));
  apply(line("[UPDATE]", 1, "SYN_RECV"));
  apply(line("[UPDATE]", 1, "ESTABLISHED"));
  assert.deepEqual(
    [...t.open(WEB)],
    [
      ["198.51.100.11:80", 1],
      ["198.51.100.12:80", 1],
    ],
  );
  apply(line("[UPDATE]", 1, "FIN_WAIT"));
  apply(line("[UPDATE]", 1, "TIME_WAIT"));
  assert.equal(t.open(WEB).get("198.51.100.11:80"), 0, "closed at once, not after TIME_WAIT");
  apply(line("[DESTROY]", 1, "TIME_WAIT"));
  apply(line("[UPDATE]", 2, "ESTABLISHED"));
  apply(line("[DESTROY]", 2, "CLOSE"));
  assert.deepEqual(
    [...t.open(WEB)],
    [
      ["198.51.100.11:80", 0],
      ["198.51.100.12:80", 0],
    ],
  );
  assert.equal(t.size, 0);
  assert.deepEqual(
    outcomes.filter((o) => o !== null).map((o) => [o.backend, o.result]),
    [
      ["198.51.100.11:80", "ok"],
      ["198.51.100.12:80", "ok"],
    ],
  );
  // A flow first seen in an UPDATE (the stream started after its NEW) counts too, once.
  t.apply(ev(line("[UPDATE]", 9, "ESTABLISHED")), 0);
  t.apply(ev(line("[UPDATE]", 9, "ESTABLISHED")), 0);
  assert.equal(t.open(WEB).get("198.51.100.11:80"), 1);
});

test("handshakes: a reset SYN is refused, an unanswered one times out once", () => {
  const t = new FlowTable();
  t.apply(ev(line("[NEW]", 1, "SYN_SENT", "198.51.100.12", "[UNREPLIED]")), 0);
  const refused = t.apply(ev(line("[DESTROY]", 1, "CLOSE", "198.51.100.12", "[UNREPLIED]")), 5);
  assert.deepEqual(refused, { service: WEB, backend: "198.51.100.12:80", result: "refused" });
  t.apply(ev(line("[NEW]", 2, "SYN_SENT", "198.51.100.13")), 100);
  t.apply(ev(line("[NEW]", 3, "SYN_SENT", "198.51.100.13")), 900);
  assert.deepEqual(t.expire(1000, 1000), []);
  assert.deepEqual(
    t.expire(1150, 1000).map((o) => o.result),
    ["timeout"],
  );
  assert.equal(t.open(WEB).get("198.51.100.13:80"), 2, "still tracked: they count as open");
  // Reported once: neither its late answer nor conntrack's own timeout counts again.
  assert.equal(t.apply(ev(line("[UPDATE]", 2, "ESTABLISHED", "198.51.100.13")), 1200), null);
  assert.equal(t.apply(ev(line("[DESTROY]", 3, "SYN_SENT", "198.51.100.13")), 1300)?.result, "timeout");
  assert.equal(t.expire(5000, 1000).length, 0);
});

/** Processes of a fake conntrack: the test writes their lines and ends them. */
function fakeConntrack() {
  const procs: {
    argv: readonly string[];
    onLine: (l: string) => void;
    end: (code: number) => void;
    err: string;
  }[] = [];
  const spawn: SpawnLines = (argv, onLine) => {
    let end!: (code: number) => void;
    const exited = new Promise<{ code: number | null; signal: string | null }>(
      (r) => (end = (code) => r({ code, signal: null })),
    );
    const p = { argv, onLine, end, err: "" };
    procs.push(p);
    const lp: LineProcess = {
      pid: 1,
      exited,
      stderr: () => p.err.slice(-100),
      stderrTotal: () => p.err.length,
      kill: () => end(143),
    };
    return lp;
  };
  return { spawn, procs };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

test("the monitor lists at start, replays events seen meanwhile, and restarts a dead stream", async () => {
  const { spawn, procs } = fakeConntrack();
  let skew = 0;
  const m = new ConntrackFlowMonitor({ spawn, now: () => Date.now() + skew });
  const changes: string[][] = [];
  m.on("counts", (s) => changes.push([...s]));
  m.start();
  assert.deepEqual(
    procs.map((p) => p.argv.slice(0, 2)),
    [
      ["conntrack", "-E"],
      ["conntrack", "-L"],
    ],
  );
  const [events, list] = procs;
  assert.ok(events && list);
  assert.equal(m.open(WEB), null, "unknown until the first listing is in");
  list.onLine(line("", 1, "ESTABLISHED").trim());
  list.onLine(line("", 2, "ESTABLISHED").trim());
  events.onLine(line("[DESTROY]", 2, "CLOSE"));
  events.onLine(line("[NEW]", 3, "SYN_SENT", "198.51.100.12"));
  list.end(0);
  await tick();
  assert.deepEqual(
    [...(m.open(WEB) ?? [])],
    [
      ["198.51.100.11:80", 1],
      ["198.51.100.12:80", 1],
    ],
  );
  assert.deepEqual(changes.at(-1), [WEB]);
  events.onLine(line("[UPDATE]", 1, "FIN_WAIT"));
  await tick();
  assert.equal(m.open(WEB)?.get("198.51.100.11:80"), 0);
  // conntrack says it lost events (the same warning again and again: the capped tail alone
  // would not change): a new listing, within the 2 s stderr check, at least 5 s after the last.
  skew = 5000;
  events.err += "WARNING: We have hit ENOBUFS! We are losing events.\n".repeat(5);
  await new Promise((r) => setTimeout(r, 2100));
  assert.equal(procs.length, 3);
  assert.deepEqual(procs[2]?.argv.slice(0, 2), ["conntrack", "-L"]);
  procs[2]?.end(0);
  // The stream dies: unknown again, and a new stream and listing after the back-off (1 s).
  events.end(1);
  await tick();
  assert.equal(m.open(WEB), null);
  await new Promise((r) => setTimeout(r, 1100));
  assert.deepEqual(
    procs.slice(3).map((p) => p.argv.slice(0, 2)),
    [
      ["conntrack", "-E"],
      ["conntrack", "-L"],
    ],
  );
  await m.stop();
});

test("passive: fall failures among the last window take a backend down, once; ok ones dilute them", () => {
  const c = parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:80
    check: { method: tcp, interval: 10s, passive: { fall: 3, window: 5, timeout: 300ms } }
    backends:
      - { address: 198.51.100.11:80 }
      - { address: 198.51.100.12:80 }
  other:
    listen: 203.0.113.10:81
    check: { passive: true }
    backends:
      - { address: 198.51.100.11:81 }
`);
  assert.deepEqual(passiveOf(c.services?.other?.check ?? { passive: false }), {
    fall: 5,
    window: 10,
    timeout: 1000,
  });
  assert.equal(PassiveHealth.synTimeout(c), 300);
  const p = new PassiveHealth();
  p.configure(c);
  const o = (result: FlowOutcome["result"], backend = "198.51.100.12:80") =>
    p.record({ service: WEB, backend, result });
  assert.equal(o("refused"), null, "one reset does not take it down");
  assert.equal(o("ok"), null);
  assert.equal(o("refused"), null);
  assert.equal(o("ok"), null);
  assert.equal(o("ok"), null);
  assert.equal(o("ok"), null, "the first refusal left the window");
  assert.equal(o("refused"), null);
  const down = o("timeout");
  assert.equal(down, null, "2 of 5");
  const v = o("refused");
  assert.deepEqual(v, {
    service: "web",
    backend: "198.51.100.12:80",
    reason: "passive: 3 of 5 new connections failed (2 refused, 1 unanswered)",
  });
  assert.equal(o("refused"), null, "the window starts afresh");
  assert.equal(o("refused", "198.51.100.99:80"), null, "not a backend of the service");
  assert.equal(
    p.record({ service: "tcp 203.0.113.10 82", backend: "198.51.100.11:80", result: "refused" }),
    null,
  );
});

test("passive config: TCP only, with an active check to come back, fall within the window", () => {
  const bad = (check: string, protocol = "tcp") => {
    try {
      parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:80
    protocol: ${protocol}
    check: ${check}
    backends:
      - { address: 198.51.100.11:80 }
`);
      return "";
    } catch (e) {
      return (e as Error).message;
    }
  };
  assert.match(bad("{ passive: true }", "udp"), /passive checks watch TCP handshakes/);
  assert.match(bad("{ method: none, passive: true }"), /comes back through the active check/);
  assert.match(bad("{ passive: { fall: 6, window: 5 } }"), /fall \(6\) exceeds window/);
  assert.match(bad("{ passive: yes }"), /passive/);
  assert.equal(bad("{ passive: false }"), "");
});

test("the daemon: least-conn plans from live counts; the passive check takes a backend down", async () => {
  const { mkdtemp, rm, writeFile } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { Daemon } = await import("../../src/daemon/daemon.ts");
  const { loadConfig } = await import("../../src/config/load.ts");
  const { silentLog } = await import("../../src/daemon/log.ts");
  const { createBackendChecker } = await import("../../src/health/backend-checker.ts");
  const { FakeFlowMonitor } = await import("../../testkit/flow-fakes.ts");
  const { idleOps } = await import("../../testkit/dataplane-fakes.ts");
  const dir = await mkdtemp(join(tmpdir(), "nflb-flows-"));
  const file = join(dir, "nflb.yaml");
  await writeFile(
    file,
    `version: 1
services:
  lc:
    listen: 203.0.113.10:81
    scheduler: least-conn
    check: { method: none }
    backends:
      - { address: 198.51.100.11:81 }
      - { address: 198.51.100.12:81 }
  web:
    listen: 203.0.113.10:80
    check: { method: tcp, interval: 1h, rise: 1, passive: { fall: 2, window: 4 } }
    backends:
      - { address: 198.51.100.11:80 }
      - { address: 198.51.100.12:80 }
`,
  );
  const flows = new FakeFlowMonitor();
  const d = await Daemon.create({
    configFile: file,
    serveApi: false,
    load: loadConfig,
    log: silentLog,
    ops: idleOps(),
    readCounters: async () => new Map(),
    readLinkBytes: async () => null,
    factories: {
      backend: (ctx) => createBackendChecker(ctx, { probe: async () => ({ ok: true, detail: "open" }) }),
      flows: () => flows,
    },
  });
  try {
    await d.start();
    assert.equal(flows.synTimeoutMs, 1000);
    const slots = () =>
      d.reconciler.last?.desired.services?.services.find((s) => s.name === "lc")?.slots ?? [];
    assert.equal(new Set(slots().slice(0, 2)).size, 2, "no counts yet: alternating");
    flows.set("tcp 203.0.113.10 81", "198.51.100.11:81", 30);
    await new Promise((r) => setTimeout(r, 400));
    await d.reconciler.idle();
    assert.deepEqual(
      new Set(slots().slice(0, 30)),
      new Set(["198.51.100.12:81"]),
      "the next 30 to the empty one",
    );
    const st = await d.status();
    const lc = st.services.find((s) => s.name === "lc")?.backends.map((b) => b.connections);
    assert.deepEqual(lc, [30, 0]);

    const out = (result: FlowOutcome["result"]) =>
      flows.outcome({ service: WEB, backend: "198.51.100.12:80", result });
    out("refused");
    out("ok");
    const web = async () => (await d.status()).services.find((s) => s.name === "web")?.backends[1];
    assert.equal((await web())?.state, "up", "one reset does not take it down");
    out("refused");
    await d.reconciler.idle();
    const down = await web();
    assert.equal(down?.state, "down");
    assert.equal(down?.reason, "passive: 2 of 3 new connections refused");
    const planned = d.reconciler.last?.desired.services?.services.find((s) => s.name === "web");
    assert.ok(!planned?.slots.includes("198.51.100.12:80"), "out of the slots");
  } finally {
    await d.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
