// Services with real connections: clients → balancer (nflb's table) → echo-server backends
// that answer with their name. Needs root; skipped (with the reason) otherwise.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { diff } from "../../src/nft/diff.ts";
import type { Ruleset } from "../../src/nft/model.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";
import type { Facts, ServiceHealth } from "../../src/plan/types.ts";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import {
  SERVICE_LAB as L,
  ServiceLab,
  backendAddress,
  type LoopEventLine,
} from "../../src/lab/service-lab.ts";
import type { TrackedProcess } from "../../src/lab/processes.ts";
import type { ClientSummary } from "../../src/lab/traffic-summary.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

const BACKENDS = 10;
const SOURCES = 500;
const b4 = (i: number) => backendAddress(i).v4;
const backendList = (ids: number[], port: number, weights: number[] = []) =>
  ids.map((i, k) => `      - { address: ${b4(i)}:${port}, weight: ${weights[k] ?? 1} }`).join("\n");

/** Reply lines are `b<i> <peer>`: connections per backend name. */
function byBackend(s: ClientSummary): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [line, n] of Object.entries(s.bySeen)) {
    const name = line.split(" ")[0] ?? "";
    out[name] = (out[name] ?? 0) + n;
  }
  return out;
}

/** source address → backend name (each source connected once). */
function backendOfSource(s: ClientSummary): Map<string, string> {
  return new Map(
    Object.entries(s.bySource).map(([src, seen]) => [src, (Object.keys(seen)[0] ?? "").split(" ")[0] ?? ""]),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("services (DNAT balancing) in a lab", { skip, timeout: 180_000 }, () => {
  const lab = new ServiceLab({ backends: BACKENDS, clientSources: SOURCES });
  let facts: Facts = { interfaces: new Map() };

  /** What the kernel holds: updates are the diff from it, as the daemon sends them. */
  let applied: Ruleset | null = null;
  const apply = async (c: Config, services: ServiceHealth = {}) => {
    const d = desiredState(c, { ...allHealthy(c), services }, facts);
    await lab.nft(d.nft);
    applied = d.model;
    return d;
  };
  const update = async (c: Config, services: ServiceHealth) => {
    const d = desiredState(c, { ...allHealthy(c), services }, facts);
    if (!applied) throw new Error("update before apply");
    const script = diff(applied, d.model).script;
    if (script) await lab.nft(script);
    applied = d.model;
  };
  const client = (o: Partial<Parameters<ServiceLab["runClient"]>[0]> & { port: number }) =>
    lab.runClient({ from: "client", dst: L.vip4, timeoutMs: 1000, deadlineMs: 30_000, ...o });

  before(
    async () => {
      await lab.build();
      const names = await lab.lbInterfaces();
      facts = { interfaces: new Map(names.map((n) => [n, { name: n, up: true, addresses: [] }])) };
      await Promise.all(
        Array.from({ length: BACKENDS }, (_, k) => lab.startBackend(k + 1, { tcp: [80, 53], udp: [53] })),
      );
    },
    { timeout: 90_000 },
  );
  after(() => lab.destroy(), { timeout: 30_000 });

  test(
    "1: round-robin is exact 100/100/100; weighted random 3:1:1 is within ±2.5 pp",
    { timeout: 60_000 },
    async () => {
      const c = parseConfig(`version: 1
services:
  rr:
    listen: ${L.vip4}:80
    scheduler: round-robin
    check: { method: none }
    backends:
${backendList([1, 2, 3], 80)}
  rnd:
    listen: ${L.vip4}:81
    scheduler: random
    check: { method: none }
    backends:
${backendList([1, 2, 3], 80, [3, 1, 1])}
  rr6:
    listen: "[${L.vip6}]:80"
    check: { method: none }
    backends:
${[1, 2, 3].map((i) => `      - { address: "[${backendAddress(i).v6}]:80" }`).join("\n")}
`);
      await apply(c);
      const rr = await client({ port: 80, count: 300 });
      assert.equal(rr.failed, 0, JSON.stringify(rr.errors));
      assert.deepEqual(byBackend(rr), { b1: 100, b2: 100, b3: 100 });
      // Every new connection counted once, on its backend's named counter.
      const counters = await lab.counters();
      assert.deepEqual(
        [0, 1, 2].map((k) => counters.get(`svc_rr_b${k}`)),
        [100, 100, 100],
      );
      // Bytes both ways, per backend: each of its 100 connections sent packets each way.
      for (const k of [0, 1, 2])
        for (const dir of ["to", "from"])
          assert.ok(
            (counters.get(`svc_rr_b${k}_${dir}`) ?? 0) >= 200,
            `svc_rr_b${k}_${dir}: ${counters.get(`svc_rr_b${k}_${dir}`)}`,
          );
      assert.equal(counters.get("svc_rnd_b0_to"), 0, "another service's backend counts nothing yet");

      const rnd = await client({ port: 81, count: 3000, parallel: 16 });
      assert.equal(rnd.failed, 0, JSON.stringify(rnd.errors));
      const got = byBackend(rnd);
      const share = (b: string) => (got[b] ?? 0) / 3000;
      for (const [b, want] of [
        ["b1", 0.6],
        ["b2", 0.2],
        ["b3", 0.2],
      ] as const)
        assert.ok(
          Math.abs(share(b) - want) <= 0.025,
          `${b}: ${share(b)} vs ${want} (${JSON.stringify(got)})`,
        );

      const v6 = await lab.runClient({ from: "client", dst: L.vip6, port: 80, count: 30, timeoutMs: 1000 });
      assert.deepEqual(byBackend(v6), { b1: 10, b2: 10, b3: 10 });
      // The balancer's own connections to the VIP take the output path.
      const local = await lab.runClient({ from: "lb", dst: L.vip4, port: 80, count: 3, timeoutMs: 1000 });
      assert.deepEqual(Object.values(byBackend(local)).sort(), [1, 1, 1]);
    },
  );

  test(
    "2: a killed backend is out within interval×fall + 1 s and back after rise checks",
    { timeout: 60_000 },
    async () => {
      const text = `version: 1
services:
  web:
    listen: ${L.vip4}:80
    scheduler: round-robin
    check: { method: tcp, interval: 200ms, timeout: 200ms, rise: 2, fall: 3 }
    backends:
${backendList([1, 2, 3], 80)}
`;
      const loop = lab.startLoop(await lab.writeConfig("failover.yaml", text));
      try {
        await loop.ready();
        assert.deepEqual(byBackend(await client({ port: 80, count: 30 })), { b1: 10, b2: 10, b3: 10 });
        await lab.stopBackend(2);
        await sleep(200 * 3 + 1000);
        const during = await client({ port: 80, count: 60 });
        assert.equal(during.failed, 0, JSON.stringify(during.errors));
        assert.equal(byBackend(during).b2, undefined, JSON.stringify(during.bySeen));
        const down = await loop.waitFor((e) => isChange(e, "198.51.100.12:80", "down"), 1000);
        assert.match(String((down.obs as { reason: string }).reason), /3 failed checks/);

        const mark = loop.events.length;
        await lab.startBackend(2, { tcp: [80, 53], udp: [53] });
        const up = await loop.waitFor((e) => isChange(e, "198.51.100.12:80", "up"), 10_000, mark);
        assert.match(String((up.obs as { reason: string }).reason), /2 good checks/);
        await loop.waitFor(
          (e) => e.type === "applied" && stateOf(e, "web", "198.51.100.12:80") === "up",
          5000,
          mark,
        );
        const back = await client({ port: 80, count: 30 });
        assert.deepEqual(byBackend(back), { b1: 10, b2: 10, b3: 10 });
      } finally {
        await loop.stop();
      }
    },
  );

  test(
    "3: drain keeps an open connection working while new ones go elsewhere",
    { timeout: 60_000 },
    async () => {
      const c = parseConfig(`version: 1
services:
  web:
    listen: ${L.vip4}:80
    check: { method: none }
    backends:
${backendList([1, 2, 3], 80)}
`);
      await apply(c);
      const holders = [];
      for (let k = 0; k < 3; k++)
        holders.push(
          await lab.startHolder({
            from: "client",
            dst: L.vip4,
            port: 80,
            intervalMs: 100,
            durationMs: 20_000,
          }),
        );
      const onB1 = holders.find((h) => h.connected.greeting.startsWith("b1 "));
      assert.ok(onB1, "round-robin put one of three holders on b1");
      for (const h of holders) if (h !== onB1) await h.stop();

      await update(c, { web: { [`${b4(1)}:80`]: { up: true, weight: 0 } } });
      const fresh = await client({ port: 80, count: 30 });
      assert.equal(fresh.failed, 0);
      assert.deepEqual(byBackend(fresh), { b2: 15, b3: 15 });
      await sleep(500);
      const s = await onB1.stop();
      assert.equal(s.failures, 0, JSON.stringify(s.errors));
      assert.ok(s.lastOkMs !== null && s.exchanges >= 5, JSON.stringify(s));
    },
  );

  test(
    "4: maglev, 10 backends, 500 sources: removing one moves its clients and ≤ 2% of the rest",
    { timeout: 60_000 },
    async (t) => {
      const all = Array.from({ length: BACKENDS }, (_, k) => k + 1);
      const c = parseConfig(`version: 1
services:
  mg:
    listen: ${L.vip4}:80
    scheduler: maglev
    check: { method: none }
    backends:
${backendList(all, 80)}
  sh:
    listen: ${L.vip4}:82
    scheduler: source-hash
    check: { method: none }
    backends:
${backendList(all, 80)}
`);
      await apply(c);
      const run = async (port: number, n = SOURCES) => {
        const r = await client({ port, count: n, sources: lab.sources.slice(0, n), parallel: 16 });
        assert.equal(r.failed, 0, JSON.stringify(r.errors));
        return backendOfSource(r);
      };
      const before = await run(80);
      assert.equal(before.size, SOURCES);
      const load = [...before.values()].reduce(
        (m, b) => m.set(b, (m.get(b) ?? 0) + 1),
        new Map<string, number>(),
      );
      assert.equal(load.size, BACKENDS, "every backend has clients");

      await update(c, { mg: { [`${b4(4)}:80`]: { up: false } } });
      const afterRemoval = await run(80);
      let moved = 0;
      let others = 0;
      for (const [src, b] of before) {
        const now = afterRemoval.get(src);
        if (b === "b4") assert.notEqual(now, "b4", `${src} still on the removed backend`);
        else {
          others++;
          if (now !== b) moved++;
        }
      }
      t.diagnostic(
        `maglev: ${moved} of ${others} other clients moved; loads before ${JSON.stringify(Object.fromEntries(load))}`,
      );
      assert.ok(moved / others <= 0.02, `${moved} of ${others} other clients moved`);

      // source-hash: the same source always lands on the same backend.
      const first = await run(82, 100);
      const again = await run(82, 100);
      assert.deepEqual(new Map([...again].sort()), new Map([...first].sort()));
    },
  );

  test(
    "5: UDP: after its backend is removed, a client's next datagrams reach a live backend",
    { timeout: 60_000 },
    async () => {
      const text = `version: 1
services:
  dns:
    listen: ${L.vip4}:53
    protocol: udp
    check: { method: tcp, port: 53, interval: 200ms, timeout: 200ms, rise: 2, fall: 2 }
    backends:
${backendList([5, 6], 53)}
`;
      const loop = lab.startLoop(await lab.writeConfig("udp.yaml", text));
      let killed = 0;
      try {
        await loop.ready();
        // One client socket, one source port: one conntrack flow for the whole run.
        const flow = lab.spawn("client", [
          process.execPath,
          "--input-type=module",
          "-e",
          UDP_FLOW,
          L.vip4,
          "53",
          "40053",
        ]);
        try {
          const first = await waitForOutput(flow, (l) => l.reply !== undefined, 10_000);
          killed = Number((first.reply ?? "").split(" ")[0]?.slice(1));
          assert.ok(killed === 5 || killed === 6, JSON.stringify(first));
          const other = killed === 5 ? "b6" : "b5";
          const mark = loop.events.length;
          await lab.stopBackend(killed);
          await sleep(200 * 2 + 1000);
          // The same 5-tuple keeps sending; without deleting its conntrack entry it would stay
          // pinned to the dead backend for as long as it keeps sending.
          const since = Date.now();
          await waitForOutput(
            flow,
            (l) => (l.reply ?? "").startsWith(`${other} `) && (l.at ?? 0) >= since,
            3000,
          );
          const flushed = await loop.waitFor((e) => e.type === "flushed", 1000, mark);
          assert.ok(Number(flushed.deleted) >= 1, JSON.stringify(flushed));
        } finally {
          await flow.stop(1000);
        }
      } finally {
        await loop.stop();
        if (killed) await lab.startBackend(killed, { tcp: [80, 53], udp: [53] });
      }
    },
  );

  test(
    "6: least-conn: with 30 connections held, new ones go to the least-loaded backend",
    { timeout: 60_000 },
    async () => {
      const text = `version: 1
services:
  lc:
    listen: ${L.vip4}:80
    scheduler: least-conn
    check: { method: tcp, interval: 200ms, timeout: 200ms, rise: 2, fall: 2 }
    backends:
${backendList([7, 8, 9], 80)}
`;
      await lab.stopBackend(9);
      const loop = lab.startLoop(await lab.writeConfig("lc.yaml", text), 200);
      const groups = [];
      try {
        await loop.ready();
        await loop.waitFor((e) => e.type === "applied" && stateOf(e, "lc", `${b4(9)}:80`) === "down", 5000);
        const g1 = lab.startConnections("client", { dst: L.vip4, port: 80, count: 30 });
        groups.push(g1);
        const held = count((await g1.opened()).map((g) => g.split(" ")[0] ?? ""));
        assert.equal(held.b9, undefined);
        assert.equal((held.b7 ?? 0) + (held.b8 ?? 0), 30);
        assert.ok(Math.abs((held.b7 ?? 0) - (held.b8 ?? 0)) <= 2, JSON.stringify(held));

        // b9 comes back empty: every new connection goes there until it has caught up.
        const mark = loop.events.length;
        await lab.startBackend(9, { tcp: [80, 53], udp: [53] });
        await loop.waitFor(
          (e) =>
            e.type === "applied" && stateOf(e, "lc", `${b4(9)}:80`) === "up" && loadOf(e, "lc", 7, 8) === 30,
          10_000,
          mark,
        );
        const g2 = lab.startConnections("client", { dst: L.vip4, port: 80, count: 10 });
        groups.push(g2);
        assert.deepEqual(count((await g2.opened()).map((g) => g.split(" ")[0] ?? "")), { b9: 10 });

        // Close the first 30: now b9 holds the most, and new connections avoid it.
        await g1.stop();
        groups.shift();
        const mark2 = loop.events.length;
        await loop.waitFor((e) => e.type === "applied" && loadOf(e, "lc", 7, 8) === 0, 10_000, mark2);
        const g3 = lab.startConnections("client", { dst: L.vip4, port: 80, count: 10 });
        groups.push(g3);
        const third = count((await g3.opened()).map((g) => g.split(" ")[0] ?? ""));
        assert.equal(third.b9, undefined, JSON.stringify(third));
        // Levelled between the two empty ones (a refresh racing a connect can tip it by one).
        assert.ok(Math.abs((third.b7 ?? 0) - (third.b8 ?? 0)) <= 2, JSON.stringify(third));
      } finally {
        for (const g of groups) await g.stop();
        await loop.stop();
      }
    },
  );

  test(
    "snat: true reaches a backend with no route back; hairpin serves a client on the backends' subnet",
    { timeout: 30_000 },
    async () => {
      const c = parseConfig(`version: 1
services:
  full:
    listen: ${L.vip4}:90
    snat: true
    check: { method: none }
    backends:
      - { address: ${L.farBackend4}:90 }
  control:
    listen: ${L.vip4}:91
    check: { method: none }
    backends:
      - { address: ${L.farBackend4}:90 }
  web:
    listen: ${L.vip4}:80
    check: { method: none }
    backends:
${backendList([1, 2], 80)}
`);
      await apply(c);
      const far = lab.startEchoServer({
        role: "far",
        name: "far",
        tcp: [{ address: L.farBackend4, port: 90 }],
      });
      const farProc = await far;
      try {
        const r = await client({ port: 90, count: 4 });
        assert.deepEqual(r.bySeen, { [`far ${L.far4}`]: 4 }, JSON.stringify(r));
        const control = await client({ port: 91, count: 1, timeoutMs: 500 });
        assert.equal(control.failed, 1, "without snat the backend's reply has no way back");
      } finally {
        await farProc.stop();
      }
      // From outside the backends' subnet the backend sees the client itself...
      const outside = await client({ port: 80, count: 2 });
      assert.equal(outside.ok, 2);
      for (const line of Object.keys(outside.bySeen)) assert.equal(line.split(" ")[1], L.client4);
      // ...from inside it, the balancer (or the backend's reply would bypass the un-DNAT).
      const near = await lab.runClient({ from: "near", dst: L.vip4, port: 80, count: 4, timeoutMs: 1000 });
      assert.equal(near.failed, 0, JSON.stringify(near.errors));
      assert.deepEqual(byBackend(near), { b1: 2, b2: 2 });
      for (const line of Object.keys(near.bySeen)) assert.equal(line.split(" ")[1], L.srv4);
      // Control: without the hairpin masquerade the backend answers the client directly, which drops it.
      await lab.nft(desiredState(c, allHealthy(c), { interfaces: new Map() }).nft);
      const broken = await lab.runClient({ from: "near", dst: L.vip4, port: 80, count: 1, timeoutMs: 500 });
      assert.equal(broken.failed, 1, JSON.stringify(broken));
    },
  );
});

const count = (xs: string[]) =>
  xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {});

function loadOf(e: LoopEventLine, svc: string, ...ids: number[]): number {
  const loads = (e.loads as Record<string, Record<string, number>> | undefined)?.[svc] ?? {};
  return ids.reduce((s, i) => s + (loads[`${b4(i)}:80`] ?? 0), 0);
}

type FlowLine = { reply?: string; at?: number };

function outputLines(p: TrackedProcess): FlowLine[] {
  return p
    .stdout()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as FlowLine);
}

async function waitForOutput(
  p: TrackedProcess,
  pred: (l: FlowLine) => boolean,
  timeoutMs: number,
): Promise<FlowLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = outputLines(p).find(pred);
    if (hit) return hit;
    if (Date.now() > deadline)
      throw new Error(`no matching line within ${timeoutMs} ms: ${p.stdout().slice(-500)}`);
    await sleep(25);
  }
}

// One UDP socket bound to a fixed source port, a datagram every 100 ms (at most 200), one JSON
// line per reply. Ends on SIGTERM.
const UDP_FLOW = `
import { createSocket } from "node:dgram";
const [host, port, sport] = process.argv.slice(1);
const sock = createSocket("udp4");
sock.on("message", (m) => process.stdout.write(JSON.stringify({ reply: m.toString().split("\\n")[0], at: Date.now() }) + "\\n"));
sock.on("error", () => undefined);
process.on("SIGTERM", () => process.exit(0));
sock.bind({ address: "${L.client4}", port: Number(sport) }, () => {
  let n = 0;
  const t = setInterval(() => {
    if (++n > 200) { clearInterval(t); process.exit(0); }
    sock.send("hello\\n", Number(port), host);
  }, 100);
});
`;

function isChange(e: LoopEventLine, backend: string, state: string): boolean {
  const o = e.obs as { backend?: string; state?: string } | undefined;
  return e.type === "change" && o?.backend === backend && o.state === state;
}

function stateOf(e: LoopEventLine, svc: string, backend: string): string | undefined {
  return (e.states as Record<string, Record<string, string>> | undefined)?.[svc]?.[backend];
}
