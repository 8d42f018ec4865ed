// Per-family health: an uplink probed with targets of both families judges each family by its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { uplinkSchema } from "../../src/config/schema.ts";
import type { LinkEvents, LinkSource, LinkState } from "../../src/health/link-watch.ts";
import { ManualClock } from "../../src/health/probe-clock.ts";
import { fakeSpawn } from "../../testkit/probe-fakes.ts";
import type { UplinkObservation } from "../../src/health/types.ts";
import { createUplinkMonitor } from "../../src/health/uplink-monitor.ts";
import { parseAddr, type Addr } from "../../src/net/ip.ts";
import { buildHealthView } from "../../src/daemon/health-view.ts";
import { emptyOverrides } from "../../src/daemon/health-view.ts";
import { parseConfig } from "../../src/config/load.ts";

const V4 = "198.18.200.1";
const V6 = "2001:db8:200::1";
const V4b = "198.18.200.2";
const V6b = "2001:db8:200::2";
const A = (s: string) => parseAddr(s) as Addr;

class FakeLinks extends EventEmitter<LinkEvents> implements LinkSource {
  states = new Map<string, LinkState>();
  get(iface: string) {
    return this.states.get(iface);
  }
  set(s: Partial<LinkState>) {
    const st: LinkState = { iface: "wan1", exists: true, adminUp: true, carrier: true, addresses: [], ...s };
    this.states.set(st.iface, st);
    this.emit("link", st);
  }
}
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

function setup(targets: string[]) {
  const clock = new ManualClock(0);
  const { spawn, procs } = fakeSpawn();
  const links = new FakeLinks();
  const u = uplinkSchema.parse({
    interface: "wan1",
    gateway: ["100.64.1.1", "2001:db8:1::1"],
    probe: { targets, up_after: 2 },
  });
  const m = createUplinkMonitor("isp1", u, { clock, spawn, link: links });
  const changes: UplinkObservation[] = [];
  m.on("change", (o) => changes.push(o));
  m.start();
  links.set({ addresses: [A("100.64.1.2"), A("2001:db8:1::2")] });
  return { clock, procs, m, changes };
}

test("targets of both families: one fping per family; IPv6 silent takes only IPv6 down, and back", async () => {
  const { clock, procs, m, changes } = setup([V4, V4b, V6, V6b]);
  await settle();
  assert.equal(procs.length, 2);
  const p4 = procs.find((p) => p.argv.includes(V4));
  const p6 = procs.find((p) => p.argv.includes(V6));
  assert.ok(p4 && p6 && !p4.argv.includes(V6) && !p6.argv.includes(V4), "each family its own targets");
  assert.ok(p6.argv.includes("2001:db8:1::2"), "IPv6 probes leave from the IPv6 address");
  const ok = (p: typeof p4, t: string, s: number) => {
    for (const a of [t, t === V4 ? V4b : V6b]) p.line(`${a} : [${s}], 64 bytes, 2.0 ms (2 avg, 0% loss)`);
  };
  const lost = (p: typeof p4, t: string, s: number) => {
    for (const a of [t, t === V4 ? V4b : V6b]) p.line(`${a} : [${s}], timed out (2 avg, 50% loss)`);
  };
  for (const s of [0, 1, 2, 3]) {
    clock.advance(200);
    ok(p4, V4, s);
    lost(p6, V6, s);
  }
  const down = changes.at(-1);
  assert.equal(down?.state, "up", "the uplink stays up: IPv4 answers");
  assert.equal(down?.families?.[6].state, "down");
  assert.equal(down?.families?.[4].state, "up");
  assert.match(down?.reason ?? "", /^IPv6 down/);
  assert.equal(m.snapshot().families?.[6].probed, true);
  for (const s of [4, 5, 6, 7]) {
    clock.advance(200);
    ok(p4, V4, s);
    ok(p6, V6, s);
  }
  assert.equal(m.snapshot().families?.[6].state, "up", "IPv6 back after up_after good rounds");
  await m.stop();
});

test("one target of each family: all targets judge the uplink together (one fping, no family apart)", async () => {
  const { procs, m } = setup([V4, V6]);
  await settle();
  assert.equal(procs.length, 1);
  assert.ok(procs[0]?.argv.includes(V4) && procs[0]?.argv.includes(V6));
  assert.equal(m.snapshot().families, undefined);
  await m.stop();
});

test("targets of one family: that family judges, the other follows (probed: false)", async () => {
  const { m } = setup([V4]);
  await settle();
  const o = m.snapshot();
  assert.equal(o.families?.[4].probed, true);
  assert.equal(o.families?.[6].probed, false);
  assert.match(o.families?.[6].reason ?? "", /not probed \(no IPv6 targets\): follows IPv4/);
  await m.stop();
});

test("the daemon's health view: a family probed down leaves only that family (downFamilies)", () => {
  const c = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: [100.64.1.1, "2001:db8:1::1"] }
  isp2: { interface: wan2, gateway: [100.64.2.1, "2001:db8:2::1"] }
`);
  const fam = (state: "up" | "down", probed = true) => ({
    state,
    reason: "",
    rttMs: 1,
    loss: 0,
    since: 0,
    probed,
  });
  const obs = (name: string, f4: "up" | "down", f6: "up" | "down", probed6 = true): UplinkObservation => ({
    name,
    state: f4 === "up" || f6 === "up" ? "up" : "down",
    reason: "",
    rttMs: 1,
    jitterMs: 0,
    loss: 0,
    quality: 1,
    since: 0,
    families: { 4: fam(f4), 6: fam(f6, probed6) },
  });
  const view = buildHealthView(
    c,
    new Map([
      ["isp1", obs("isp1", "up", "down")],
      ["isp2", obs("isp2", "up", "up")],
    ]),
    new Map(),
    emptyOverrides(),
  );
  assert.deepEqual(view.uplinks.isp1, { up: true, weight: 1, downFamilies: [6] });
  assert.deepEqual(view.uplinks.isp2, { up: true, weight: 1 });
});

test("status: each family's own state, figures and share; nflb status prints them apart", async () => {
  const { DaemonModel } = await import("../../src/daemon/model.ts");
  const { desiredState } = await import("../../src/plan/desired.ts");
  const { formatStatus } = await import("../../src/daemon/status-table.ts");
  const text = `version: 1
uplinks:
  isp1: { interface: wan1, gateway: [100.64.1.1, "2001:db8:1::1"] }
  isp2: { interface: wan2, gateway: [100.64.2.1, "2001:db8:2::1"] }
`;
  const c = parseConfig(text);
  const facts = {
    interfaces: new Map(
      [1, 2].map((i) => [
        `wan${i}`,
        {
          name: `wan${i}`,
          up: true,
          addresses: [A(`100.64.${i}.2`), A(`2001:db8:${i}::2`)],
        },
      ]),
    ),
  };
  const m = new DaemonModel({ config: c, file: "/tmp/x.yaml", text, locate: (i) => i });
  const fam = (state: "up" | "down", reason: string, rttMs: number) => ({
    state,
    reason,
    rttMs,
    loss: state === "down" ? 1 : 0,
    since: 0,
    probed: true,
  });
  m.uplinkObs.set("isp1", {
    name: "isp1",
    state: "up",
    reason: "IPv6 down (3 rounds without an answer); IPv4 up",
    rttMs: 2,
    jitterMs: 0,
    loss: 0,
    quality: 1,
    since: 0,
    families: { 4: fam("up", "10 good rounds", 2), 6: fam("down", "3 rounds without an answer", 3) },
  });
  for (const n of ["isp1", "isp2"]) m.probed.add(n);
  const desired = desiredState(c, m.input().health, facts);
  const s = m.status({ desired, at: new Date(0) }, false, new Map(), () => null);
  const f = s.uplinks[0]?.families;
  assert.equal(s.uplinks[0]?.state, "up");
  assert.deepEqual(
    [f?.ipv4.state, f?.ipv4.share, f?.ipv4.rtt_ms, f?.ipv6.state, f?.ipv6.share, f?.ipv6.reason],
    ["up", 0.5, 2, "down", 0, "3 rounds without an answer"],
  );
  assert.equal(s.uplinks[1]?.families?.ipv6.share, 1);
  const out = formatStatus(s, false);
  assert.match(out, /isp1\s+ipv4\s+up\s+50\.0%/);
  assert.match(out, /isp1\s+ipv6\s+down\s+0\.0%\s+3\.0 ms\s+100\.0%\s+3 rounds without an answer/);
});
