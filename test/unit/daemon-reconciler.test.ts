import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import type { Desired, HealthView } from "../../src/plan/desired.ts";
import type { Facts } from "../../src/plan/types.ts";
import { Reconciler, sharesOf, type DataplaneOps, type ReconcileInput } from "../../src/daemon/reconciler.ts";
import { silentLog } from "../../src/daemon/log.ts";

const cfg = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, weight: 3 }
  isp2: { interface: wan2, gateway: 100.64.2.1, weight: 1 }
  isp3: { interface: wan3, gateway: 100.64.3.1, weight: 1 }
balance: { primary: [isp1, isp2, isp3] }
rules:
  - { name: web, source: [198.18.0.0/24], sticky: 30m }
`);

const facts: Facts = {
  interfaces: new Map(
    [1, 2, 3].map((i) => [
      `wan${i}`,
      { name: `wan${i}`, up: true, addresses: [{ family: 4 as const, text: `100.64.${i}.2` }] },
    ]),
  ),
};

type Call = { op: string; arg?: unknown };

function fakeOps(opts: { failNft?: () => boolean; gate?: Promise<void>; tableMissing?: boolean } = {}) {
  const calls: Call[] = [];
  const ops: DataplaneOps = {
    readFacts: async () => facts,
    applyFull: async (d: Desired, nftScript?: string) => {
      await opts.gate;
      calls.push({ op: "full", arg: { d, nftScript } });
    },
    applyNft: async (s: string) => {
      await opts.gate;
      if (opts.failNft?.()) throw new Error("nft said no");
      calls.push({ op: "nft", arg: s });
    },
    applyRouting: async (d: Desired) => {
      calls.push({ op: "routing", arg: d.routing.routes.find((r) => r.table === 200)?.nexthops[0]?.dev });
    },
    tableExists: async () => !opts.tableMissing,
    flushConntrack: async (mark, mask) => {
      calls.push({ op: "conntrack", arg: `${mark.toString(16)}/${mask.toString(16)}` });
      return 7;
    },
    purgeSticky: async (maps, mark) => {
      calls.push({ op: "sticky", arg: `${maps.join(",")}@${mark.toString(16)}` });
      return 2;
    },
  };
  return { ops, calls };
}

function health(c: Config, down: string[] = [], disabled: string[] = []): ReconcileInput {
  const h: HealthView = { uplinks: {}, services: {} };
  for (const n of Object.keys(c.uplinks ?? {}))
    h.uplinks[n] = { up: !down.includes(n) && !disabled.includes(n) };
  return { config: c, health: h, probeDown: new Set(down) };
}

function setup(opts: Parameters<typeof fakeOps>[0] = {}) {
  const f = fakeOps(opts);
  let input = health(cfg);
  const applies: string[] = [];
  const keeping: boolean[] = [];
  const r = new Reconciler(() => input, f.ops, {
    log: silentLog,
    onApply: (kind) => applies.push(kind),
    onKeeping: (k) => keeping.push(k),
  });
  return {
    r,
    calls: f.calls,
    applies,
    keeping,
    set: (i: ReconcileInput) => (input = i),
  };
}

test("the first run replaces the whole table and flushes nothing", async () => {
  const s = setup();
  const res = await s.r.reconcile("start");
  assert.equal(res.action, "full");
  assert.deepEqual(
    s.calls.map((c) => c.op),
    ["full"],
  );
  // Even an uplink that starts down is not flushed: no transition was seen by this daemon.
  const s2 = setup();
  s2.set(health(cfg, ["isp2"]));
  await s2.r.reconcile("start");
  assert.ok(!s2.calls.some((c) => c.op === "conntrack"));
});

test("a health change is an in-place update, then the dead uplink's conntrack and sticky entries go", async () => {
  const s = setup();
  await s.r.reconcile("start");
  s.calls.length = 0;
  s.set(health(cfg, ["isp1"]));
  const res = await s.r.reconcile("isp1 down");
  assert.equal(res.action, "update");
  // Update first (one nft transaction), the primary route moves, only then the flush.
  assert.deepEqual(
    s.calls.map((c) => c.op),
    ["nft", "routing", "sticky", "conntrack"],
  );
  assert.equal(s.calls[1]?.arg, "wan2");
  assert.equal(s.calls[2]?.arg, "rule_0_sticky4,rule_0_sticky6@100");
  assert.equal(s.calls[3]?.arg, "100/ff00");
  assert.deepEqual(res.forgotten, [{ uplink: "isp1", conntrack: 7, sticky: 2 }]);
  // Only what changed: the split (3:1:1 → 1:1), the balance rule's modulus and the live-uplink
  // map; the rule's target (balance), the sticky maps and everything else stay.
  assert.equal(
    String(s.calls[0]?.arg),
    [
      "flush chain inet nflb balance4",
      "add rule inet nflb balance4 numgen random mod 2 vmap @split4",
      "flush map inet nflb split4",
      // Deleting one element would make nft 1.0.6 read back every interval set of the table
      // (here more elements than sticky_live holds): writing sticky_live again costs less.
      "flush map inet nflb sticky_live4",
      "table inet nflb {",
      "\tmap split4 {",
      "\t\ttypeof numgen random mod 1 : verdict",
      "\t\tflags interval",
      "\t\telements = { 0 : goto up_isp2_pin, 1 : goto up_isp3_pin }",
      "\t}",
      "\tmap sticky_live4 {",
      "\t\ttypeof ct mark : verdict",
      "\t\telements = { 0x00000200 : goto up_isp2_pin, 0x00000300 : goto up_isp3_pin }",
      "\t}",
      "}",
      "",
    ].join("\n"),
  );
  assert.deepEqual(s.applies, ["full", "update"]);
  assert.deepEqual(Object.fromEntries(sharesOf(s.r.last?.desired)), { isp1: 0, isp2: 0.5, isp3: 0.5 });
});

test("nothing changed: nothing is applied", async () => {
  const s = setup();
  await s.r.reconcile("start");
  s.calls.length = 0;
  const res = await s.r.reconcile("round");
  assert.equal(res.action, "none");
  assert.deepEqual(s.calls, []);
});

test("a disabled uplink leaves the split without a conntrack flush", async () => {
  const s = setup();
  await s.r.reconcile("start");
  s.calls.length = 0;
  s.set(health(cfg, [], ["isp2"]));
  await s.r.reconcile("api");
  assert.deepEqual(
    s.calls.map((c) => c.op),
    ["nft", "sticky"],
  );
});

test("flush_on_down: false keeps conntrack", async () => {
  const c = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1 }
  isp2: { interface: wan2, gateway: 100.64.2.1 }
balance: { flush_on_down: false }
`);
  const s = setup();
  s.set(health(c));
  await s.r.reconcile("start");
  s.set(health(c, ["isp2"]));
  await s.r.reconcile("down");
  assert.ok(!s.calls.some((x) => x.op === "conntrack" || x.op === "sticky"));
});

test("every uplink down: the last data plane is kept, and said so once", async () => {
  const s = setup();
  await s.r.reconcile("start");
  s.set(health(cfg, ["isp1", "isp2"]));
  await s.r.reconcile("isp1, isp2 down");
  const before = s.r.last?.model;
  s.calls.length = 0;
  s.set(health(cfg, ["isp1", "isp2", "isp3"]));
  const res = await s.r.reconcile("isp3 down");
  assert.equal(res.action, "none");
  assert.equal(res.keeping, true);
  assert.deepEqual(s.calls, [], "no apply, no flush");
  assert.deepEqual(s.r.last?.model, before);
  await s.r.reconcile("still down");
  assert.deepEqual(s.keeping, [true]);
  // isp3 comes back: balancing over it alone; isp3 was never flushed while it was the last one.
  s.set(health(cfg, ["isp1", "isp2"]));
  const back = await s.r.reconcile("isp3 up");
  assert.equal(back.action, "none", "isp3 alone is exactly what was kept");
  assert.deepEqual(s.keeping, [true, false]);
  s.set(health(cfg, ["isp2"]));
  assert.equal((await s.r.reconcile("isp1 up")).action, "update");
});

test("a new config object or a missing table means a full replace", async () => {
  const s = setup({ tableMissing: true });
  await s.r.reconcile("start");
  assert.equal((await s.r.reconcile("periodic", { verify: true })).action, "full");
  const c2 = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1 }
`);
  s.set(health(c2));
  assert.equal((await s.r.reconcile("reload")).action, "full");
});

test("requests during a run are coalesced into one more run", async () => {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const s = setup({ gate });
  const first = s.r.reconcile("start");
  const queued = ["a", "b", "c"].map((x) => s.r.reconcile(x));
  open();
  const [r1, ...rest] = await Promise.all([first, ...queued]);
  assert.deepEqual(r1?.reasons, ["start"]);
  for (const r of rest) assert.deepEqual(r.reasons, ["a", "b", "c"]);
  assert.equal(rest[0], rest[2], "the same run answers every coalesced request");
  assert.equal(s.calls.filter((c) => c.op === "full").length, 1);
  await s.r.idle();
});

test("a failed update is retried as a full replace", async () => {
  let fail = true;
  const s = setup({ failNft: () => fail });
  await s.r.reconcile("start");
  s.set(health(cfg, ["isp3"]));
  const bad = await s.r.reconcile("isp3 down");
  assert.equal(bad.action, "failed");
  assert.match(bad.error?.message ?? "", /nft said no/);
  assert.ok(!s.calls.some((c) => c.op === "conntrack"), "no flush when the split did not move");
  fail = false;
  const good = await s.r.reconcile("again");
  assert.equal(good.action, "full");
  assert.deepEqual(good.forgotten, [{ uplink: "isp3", conntrack: 7, sticky: 2 }]);
  await s.r.close();
});

test("a full replace writes the external elements of that moment; an exclusive section never overlaps a run", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const f = fakeOps({ gate });
  // `exec_via` stands for any set another writer owns (the cluster's buckets are the daemon's).
  let elements = [{ key: '"nflb-exec-1"', value: "goto up_isp1_pin" }];
  const external = () => [{ table: "inet nflb", set: "exec_via", elements }];
  const r = new Reconciler(() => ({ ...health(cfg), external }), f.ops, { log: silentLog });
  const run = r.reconcile("start");
  const order: string[] = [];
  const ex = r.exclusive(async () => {
    order.push(`exclusive after ${f.calls.length} apply`);
    elements = [];
  });
  release();
  await Promise.all([run, ex]);
  assert.deepEqual(order, ["exclusive after 1 apply"]);
  const full = f.calls[0]?.arg as { d: Desired; nftScript: string };
  assert.match(full.nftScript, /^add table inet nflb\ndelete table inet nflb\n/);
  assert.match(
    full.nftScript,
    /\tmap exec_via \{\n.*\n\t\telements = \{ "nflb-exec-1" : goto up_isp1_pin \}/,
  );
  // A later health change is a diff: the external elements are not the reconciler's to touch.
  f.calls.length = 0;
  await r.reconcile("again");
  assert.deepEqual(f.calls, []);
});

test("a UDP backend that goes down has its pinned flows deleted, once, after the slots moved", async () => {
  const c = parseConfig(`version: 1
services:
  dns:
    listen: 203.0.113.53:53
    protocol: udp
    backends: [{ address: 198.51.100.11:53 }, { address: 198.51.100.12:53 }]
  web:
    listen: 203.0.113.80:80
    backends: [{ address: 198.51.100.21:80 }, { address: 198.51.100.22:80 }]
`);
  const f = fakeOps();
  const deleted: string[] = [];
  f.ops.deleteBackendFlows = async (flows, to) => {
    f.calls.push({ op: "udp" });
    deleted.push(`${flows.vip}:${flows.port} → ${to.address}:${to.port}`);
    return 3;
  };
  const down = (backends: string[]): ReconcileInput => ({
    config: c,
    health: {
      uplinks: {},
      services: {
        dns: Object.fromEntries(backends.filter((b) => b.endsWith(":53")).map((b) => [b, { up: false }])),
        web: Object.fromEntries(backends.filter((b) => b.endsWith(":80")).map((b) => [b, { up: false }])),
      },
    },
    probeDown: new Set(),
  });
  let input = down([]);
  const r = new Reconciler(() => input, f.ops, { log: silentLog });
  await r.reconcile("start");
  assert.deepEqual(deleted, [], "nothing went down yet");
  input = down(["198.51.100.11:53", "198.51.100.21:80"]);
  await r.reconcile("dns and web backends down");
  assert.deepEqual(
    deleted,
    ["203.0.113.53:53 → 198.51.100.11:53"],
    "UDP only: TCP connections end by themselves",
  );
  const ops = f.calls.map((x) => x.op);
  assert.ok(ops.lastIndexOf("nft") < ops.indexOf("udp"), "flows go after the slots moved");
  await r.reconcile("still down");
  assert.equal(deleted.length, 1, "not again while it stays down");
});

test("one family down: only that family's split moves, its sticky maps are purged and its connections flushed", async () => {
  const c = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: [100.64.1.1, "2001:db8:1::1"] }
  isp2: { interface: wan2, gateway: [100.64.2.1, "2001:db8:2::1"] }
rules:
  - { name: web, source: [198.18.0.0/24, "2001:db8:18::/48"], sticky: 30m }
`);
  const dual: Facts = {
    interfaces: new Map(
      [1, 2].map((i) => [
        `wan${i}`,
        {
          name: `wan${i}`,
          up: true,
          addresses: [
            { family: 4 as const, text: `100.64.${i}.2` },
            { family: 6 as const, text: `2001:db8:${i}::2` },
          ],
        },
      ]),
    ),
  };
  const f = fakeOps();
  const flushed: unknown[] = [];
  f.ops.readFacts = async () => dual;
  f.ops.flushConntrack = async (mark, mask, family) => {
    flushed.push([mark.toString(16), family]);
    return 3;
  };
  const up = (down6: boolean): ReconcileInput => ({
    config: c,
    health: {
      uplinks: { isp1: down6 ? { up: true, downFamilies: [6] } : { up: true }, isp2: { up: true } },
      services: {},
    },
    probeDown: new Set(),
    probeDownFamilies: new Set(down6 ? ["isp1/6"] : []),
  });
  let input = up(false);
  const r = new Reconciler(() => input, f.ops, { log: silentLog });
  await r.reconcile("start");
  f.calls.length = 0;
  input = up(true);
  const res = await r.reconcile("isp1 IPv6 down");
  assert.equal(res.action, "update");
  const script = String(f.calls.find((x) => x.op === "nft")?.arg);
  assert.match(script, /split6/);
  // Nothing of IPv4: not its split, live map or balance chain.
  assert.doesNotMatch(script, /split4|sticky_live4|balance4|flush chain inet nflb balance\n/);
  assert.equal(f.calls.find((x) => x.op === "sticky")?.arg, "rule_0_sticky6@100");
  assert.deepEqual(flushed, [["100", 6]]);
  assert.deepEqual(res.forgotten, [{ uplink: "isp1", conntrack: 3, sticky: 2, family: 6 }]);
  assert.deepEqual(Object.fromEntries(sharesOf(r.last?.desired, 6)), { isp1: 0, isp2: 1 });
  assert.deepEqual(Object.fromEntries(sharesOf(r.last?.desired, 4)), { isp1: 0.5, isp2: 0.5 });
  // Back up: the IPv6 split again, nothing flushed.
  input = up(false);
  flushed.length = 0;
  const back = await r.reconcile("isp1 IPv6 up");
  assert.deepEqual(back.forgotten, []);
  assert.deepEqual(flushed, []);
  assert.deepEqual(Object.fromEntries(sharesOf(r.last?.desired, 6)), { isp1: 0.5, isp2: 0.5 });
});

test("only a services-only run after an applied one, same config, may reuse the host facts; coalesced runs all must be", async () => {
  const asked: (boolean | undefined)[] = [];
  const f = fakeOps();
  f.ops.readFacts = async (o) => {
    asked.push(o?.reuse);
    return facts;
  };
  const r = new Reconciler(() => health(cfg), f.ops, { log: silentLog });
  await r.reconcile("start", { force: true, servicesOnly: true });
  await r.reconcile("api: weight", { servicesOnly: true });
  await r.reconcile("periodic check", { verify: true, servicesOnly: true });
  await r.reconcile("uplink isp1: addresses or gateway changed");
  // Two requests while one runs are one run: it reuses only when both may.
  const running = r.reconcile("backend up", { servicesOnly: true });
  const a = r.reconcile("backend down", { servicesOnly: true });
  const b = r.reconcile("uplink isp2 down");
  await Promise.all([running, a, b]);
  assert.deepEqual(asked, [undefined, true, undefined, undefined, true, undefined]);
});
