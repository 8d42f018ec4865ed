import { afterEach, beforeEach, mock, test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { ServiceHealthLoop, type LoopEvent } from "../../src/health/backend-loop.ts";
import type { BackendCheckSpec, ProbeResult } from "../../src/health/backend-probes.ts";
import { countByBackend, type ServiceFlows } from "../../src/system/conntrack.ts";

test("conntrack text → open connections per backend (TCP closing states do not count)", () => {
  const text = [
    "tcp      6 99 ESTABLISHED src=198.18.0.2 dst=203.0.113.10 sport=40000 dport=80 src=198.51.100.11 dst=198.18.0.2 sport=80 dport=40000 [ASSURED] mark=0 use=1",
    "tcp      6 99 SYN_SENT src=198.18.0.3 dst=203.0.113.10 sport=40001 dport=80 [UNREPLIED] src=198.51.100.12 dst=198.18.0.3 sport=80 dport=40001 mark=0 use=1",
    "tcp      6 99 TIME_WAIT src=198.18.0.4 dst=203.0.113.10 sport=40002 dport=80 src=198.51.100.11 dst=198.18.0.4 sport=80 dport=40002 [ASSURED] mark=0 use=1",
    "tcp      6 99 ESTABLISHED src=2001:db8:1::2 dst=2001:db8:203::10 sport=4 dport=80 src=2001:0db8:51::11 dst=2001:db8:1::2 sport=80 dport=4 [ASSURED] mark=0 use=1",
    "udp      17 99 src=198.18.0.2 dst=203.0.113.10 sport=5000 dport=53 [UNREPLIED] src=198.51.100.12 dst=198.18.0.2 sport=53 dport=5000 mark=0 use=1",
    "conntrack v1.4.7 (conntrack-tools): 5 flow entries have been shown.",
  ].join("\n");
  assert.deepEqual(
    [...countByBackend(text, "tcp")],
    [
      ["198.51.100.11:80", 1],
      ["198.51.100.12:80", 1],
      ["[2001:db8:51::11]:80", 1],
    ],
  );
  assert.deepEqual([...countByBackend(text, "udp")], [["198.51.100.12:53", 1]]);
});

const cfg = parseConfig(`version: 1
services:
  dns:
    listen: 203.0.113.10:53
    protocol: udp
    check: { method: tcp, interval: 1s, timeout: 500ms, rise: 1, fall: 1 }
    backends:
      - { address: 198.51.100.11:53 }
      - { address: 198.51.100.12:53 }
  web:
    listen: 203.0.113.10:80
    scheduler: least-conn
    check: { method: none }
    backends:
      - { address: 198.51.100.11:80 }
      - { address: 198.51.100.12:80 }
`);

const flush = () => new Promise<void>((r) => setImmediate(r));
async function advance(ms: number, step = 10) {
  for (let t = 0; t < ms; t += step) {
    mock.timers.tick(step);
    await flush();
  }
}

beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 }));
afterEach(() => mock.timers.reset());

test("a failed backend is one small transaction; its UDP flows are deleted; drain is an update", async () => {
  const healthy = new Map([
    ["198.51.100.11:53", true],
    ["198.51.100.12:53", true],
  ]);
  const scripts: string[] = [];
  const deleted: [ServiceFlows, { address: string; port: number }][] = [];
  const events: LoopEvent[] = [];
  const loop = new ServiceHealthLoop(cfg, {
    probe: (s: BackendCheckSpec): Promise<ProbeResult> =>
      Promise.resolve({ ok: healthy.get(s.backend) ?? false, detail: "fake" }),
    apply: (s) => (scripts.push(s), Promise.resolve()),
    countConnections: () => Promise.resolve(new Map()),
    deleteFlows: (f, b) => (deleted.push([f, b]), Promise.resolve(3)),
    onEvent: (e) => events.push(e),
    loadIntervalMs: 1000,
  });
  await loop.start();
  assert.equal(scripts.length, 1);
  assert.match(scripts[0] ?? "", /^add table inet nflb\ndelete table inet nflb\n/);

  healthy.set("198.51.100.11:53", false);
  await advance(1000);
  await loop.settled();
  assert.equal(scripts.length, 2);
  assert.equal(
    scripts[1],
    [
      "flush chain inet nflb svc_dns",
      "add rule inet nflb svc_dns numgen inc mod 1 vmap @svc_dns_slots",
      "flush map inet nflb svc_dns_slots",
      "table inet nflb {",
      "\tmap svc_dns_slots {",
      "\t\ttypeof numgen inc mod 1 : verdict",
      "\t\telements = { 0 : goto svc_dns_b1 }",
      "\t}",
      "}",
      "",
    ].join("\n"),
  );
  assert.deepEqual(deleted, [
    [
      { family: 4, protocol: "udp", vip: "203.0.113.10", port: 53 },
      { address: "198.51.100.11", port: 53 },
    ],
  ]);
  assert.ok(events.some((e) => e.type === "flushed" && e.deleted === 3));

  // Draining keeps the flows: only the slot map changes.
  loop.setWeight("dns", "198.51.100.12:53", 0);
  await loop.settled();
  assert.equal(scripts.length, 3);
  assert.match(scripts[2] ?? "", /add rule inet nflb svc_dns drop/);
  assert.equal(deleted.length, 1);
  await loop.stop();
});

test("least-conn re-plans from conntrack counts and restarts its sequence", async () => {
  const scripts: string[] = [];
  let counts = new Map<string, number>();
  const loop = new ServiceHealthLoop(cfg, {
    probe: () => Promise.resolve({ ok: true, detail: "fake" }),
    apply: (s) => (scripts.push(s), Promise.resolve()),
    countConnections: (f) => Promise.resolve(f.port === 80 ? counts : new Map()),
    deleteFlows: () => Promise.resolve(0),
    loadIntervalMs: 500,
  });
  await loop.start();
  await advance(20);
  assert.equal(scripts.length, 1, "no change in counts, no update");
  counts = new Map([["198.51.100.11:80", 4]]);
  await advance(500);
  await loop.settled();
  assert.equal(scripts.length, 2);
  const upd = scripts[1] ?? "";
  // Only the slots whose backend changed, and the rule again: the walk restarts at slot 0.
  assert.equal(
    upd,
    [
      "flush chain inet nflb svc_web",
      "add rule inet nflb svc_web numgen inc mod 256 vmap @svc_web_slots",
      "delete element inet nflb svc_web_slots { 0, 2 }",
      "table inet nflb {",
      "\tmap svc_web_slots {",
      "\t\ttypeof numgen inc mod 1 : verdict",
      "\t\telements = { 0 : goto svc_web_b1, 2 : goto svc_web_b1 }",
      "\t}",
      "}",
      "",
    ].join("\n"),
  );
  assert.match(upd, /add rule inet nflb svc_web numgen inc mod 256 vmap @svc_web_slots/);
  assert.doesNotMatch(upd, /svc_dns/);
  assert.deepEqual(
    loop.plan?.services[1]?.backends.map((b) => b.connections),
    [4, 0],
  );
  await loop.stop();
});

test("a failed transaction is retried; the kernel keeps the previous plan meanwhile", async () => {
  const scripts: string[] = [];
  let failNext = false;
  const events: LoopEvent[] = [];
  let up = true;
  const loop = new ServiceHealthLoop(cfg, {
    probe: (s) => Promise.resolve({ ok: s.backend !== "198.51.100.12:53" || up, detail: "fake" }),
    apply: (s) => {
      if (failNext) {
        failNext = false;
        return Promise.reject(new Error("nft said no"));
      }
      scripts.push(s);
      return Promise.resolve();
    },
    countConnections: () => Promise.resolve(new Map()),
    deleteFlows: () => Promise.resolve(0),
    onEvent: (e) => events.push(e),
  });
  await loop.start();
  failNext = true;
  up = false;
  await advance(1000);
  await loop.settled();
  assert.ok(events.some((e) => e.type === "error" && /nft said no/.test(e.message)));
  assert.equal(scripts.length, 1);
  assert.equal(loop.plan?.services[0]?.backends[1]?.state, "up", "the plan the kernel holds");
  await advance(1000);
  await loop.settled();
  assert.equal(scripts.length, 2);
  // The diff from the plan the kernel holds (b1's slot goes), not from the one that failed.
  assert.match(scripts[1] ?? "", /^delete element inet nflb svc_dns_slots \{ 1 \}$/m);
  await loop.stop();
});
