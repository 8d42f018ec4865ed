import { test } from "node:test";
import { groupOf } from "../../src/plan/nft-groups.ts";
import { groupSlotsMap } from "../../src/nft/names.ts";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { buildHealthView, emptyOverrides } from "../../src/daemon/health-view.ts";
import { DaemonModel } from "../../src/daemon/model.ts";
import { desiredState, type Desired } from "../../src/plan/desired.ts";
import { diff } from "../../src/nft/diff.ts";
import { serialize } from "../../src/nft/serialize.ts";

// The daemon's incremental path (kept health records, kept service plans and objects, a diff that
// skips by identity) must send exactly what a full re-plan of fresh objects and a diff that
// compares everything would send, for any sequence of one-backend changes.

const SCHEDULERS = ["round-robin", "random", "source-hash", "maglev", "least-conn"] as const;

function configText(count = 24): string {
  const lines = ["version: 1", "services:"];
  for (let s = 0; s < count; s++) {
    const v6 = s % 7 === 3;
    const listen = v6 ? `"[2001:db8::${s + 1}]:${1000 + s}"` : `203.0.113.${10 + (s % 200)}:${1000 + s}`;
    lines.push(`  s${s}:`, `    listen: ${listen}`, `    scheduler: ${SCHEDULERS[s % SCHEDULERS.length]}`);
    if (s % 4 === 1) lines.push("    protocol: udp");
    if (s % 5 === 2) lines.push("    snat: true");
    if (s % 6 === 4) lines.push("    persistence: 5m");
    lines.push("    backends:");
    for (let b = 0; b < 6; b++) {
      const addr = v6
        ? `"[2001:db8:1::${s * 16 + b + 1}]:80"`
        : `198.${18 + (s >> 8)}.${s & 255}.${b + 1}:80`;
      const extra = b === 5 && s % 3 === 0 ? ", backup: true" : b === 1 ? ", weight: 3" : "";
      lines.push(`      - { address: ${addr}${extra} }`);
    }
  }
  return lines.join("\n") + "\n";
}

/** A small deterministic generator (the sequence must be the same on every run). */
function rng(seed: number) {
  let x = seed >>> 0;
  return (n: number) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % n;
  };
}

const sameModelText = (a: Desired, b: Desired) => assert.equal(serialize(a.model), serialize(b.model));

test("one-backend changes: the incremental plan and diff equal a full re-plan and a full diff", () => {
  randomChanges(24, 150, 11, 40);
});

test("the same with several services per group map (only the changed members' elements are compared)", () => {
  // 256 services in 128 groups: most group maps hold the slots of several services.
  randomChanges(256, 30, 5, 8);
});

function randomChanges(count: number, steps: number, seed: number, atLeast: number): void {
  const text = configText(count);
  const config = parseConfig(text);
  const model = new DaemonModel({ config, file: "t.yaml", text, locate: (i) => i });
  const open = new Map<string, Map<string, number>>();
  model.connections = (svc) => open.get(svc) ?? null;
  const facts = { interfaces: new Map() };
  const names = Object.keys(config.services ?? {});
  const rand = rng(seed);

  let inc = desiredState(config, model.input().health, facts);
  let full = inc;
  let fullApplied = structuredClone(inc.model);
  let changes = 0;
  for (let step = 0; step < steps; step++) {
    const svc = names[rand(names.length)] as string;
    const s = config.services?.[svc];
    assert.ok(s);
    const backend = s.backends[rand(s.backends.length)]?.address as string;
    const o = model.overrides;
    const set = (m: Map<string, Set<string>>, on: boolean) => {
      let x = m.get(svc);
      if (!x) m.set(svc, (x = new Set()));
      if (on) x.add(backend);
      else x.delete(backend);
    };
    switch (rand(8)) {
      case 0:
      case 1:
        model.observeBackend({
          service: svc,
          backend,
          // Mostly a flip of its state, sometimes the same state again (no change to send).
          state: (model.backendObs.get(svc)?.get(backend)?.state === "down") !== rand(5) > 0 ? "down" : "up",
          reason: `step ${step}`,
          since: step,
        });
        break;
      case 2:
        set(o.drained, !o.drained.get(svc)?.has(backend));
        break;
      case 3:
        set(o.maint, rand(3) === 0);
        break;
      case 4: {
        let w = o.weights.get(svc);
        if (!w) o.weights.set(svc, (w = new Map()));
        if (rand(3) === 0) w.delete(backend);
        else w.set(backend, rand(5));
        break;
      }
      case 5: {
        // least-conn's counts, a new map each time as the flow monitor hands them out.
        const m = new Map(open.get(svc));
        m.set(backend.replace(/^"|"$/g, ""), rand(20));
        open.set(svc, m);
        break;
      }
      case 6:
        // Every override of the service lifted at once (the daemon's view looks only at services
        // with overrides now or at its last build: one that has none left must be seen too).
        o.drained.delete(svc);
        o.maint.delete(svc);
        o.weights.delete(svc);
        break;
      default:
        // Nothing changed: both paths must send nothing.
        break;
    }

    const input = model.input();
    // The kept records are the records a build from scratch makes.
    const fresh = buildHealthView(config, new Map(), model.backendObs, o, new Map(), model.connections);
    assert.deepEqual(input.health.services, fresh.services);

    const nextInc = desiredState(config, input.health, facts, inc.services);
    // A fresh copy of the config: nothing of the earlier plans can be reused by identity.
    const copy = structuredClone(config) as Config;
    const nextFull = desiredState(copy, structuredClone(fresh), facts, structuredClone(full.services));
    const fullModel = structuredClone(nextFull.model);
    const a = diff(inc.model, nextInc.model);
    const b = diff(fullApplied, fullModel);
    assert.equal(a.script, b.script, `step ${step}: ${svc} ${backend}`);
    assert.deepEqual(a.replaced, []);
    assert.deepEqual(b.replaced, []);
    if (a.script) changes++;
    if (step % 50 === 0) sameModelText(nextInc, nextFull);
    inc = nextInc;
    full = nextFull;
    fullApplied = fullModel;
  }
  sameModelText(inc, full);
  // The sequence did change the data plane, often.
  assert.ok(changes > atLeast, `${changes} changes`);
}

test("a health record changed in place by a caller that builds its own still re-plans when it is a new object", () => {
  // Callers other than the daemon (explain, tests) build new records: equal content reuses the plan.
  const text = configText();
  const config = parseConfig(text);
  const facts = { interfaces: new Map() };
  const first = config.services?.s0?.backends[0]?.address as string;
  const a = desiredState(config, { uplinks: {}, services: {} }, facts);
  const b = desiredState(
    config,
    { uplinks: {}, services: { s0: { [first]: { up: false } } } },
    facts,
    a.services,
  );
  assert.notEqual(a.services?.services[0], b.services?.services[0]);
  assert.ok(b.services?.services[0]?.backends[0]?.state === "down");
  const c = desiredState(
    config,
    { uplinks: {}, services: { s0: { [first]: { up: false } } } },
    facts,
    b.services,
  );
  assert.equal(b.services?.services[0], c.services?.services[0]);
  assert.equal(b.services?.services[1], c.services?.services[1]);
  void emptyOverrides;
});

test("an uplink's health change re-plans no service and re-lists no rule prefix", () => {
  const config = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, weight: 5 }
  isp2: { interface: wan2, gateway: 100.64.2.1, weight: 3 }
rules:
  - { name: bank, destination: [66.218.64.0/19, 66.218.128.0/19, "2001:db8:66::/48"], via: [isp2, isp1] }
services:
  web:
    listen: 203.0.113.10:80
    backends: [{ address: 198.51.100.11:80 }, { address: 198.51.100.12:80 }]
  dns:
    listen: 203.0.113.10:53
    protocol: udp
    scheduler: maglev
    backends: [{ address: 198.51.100.11:53 }, { address: 198.51.100.12:53 }]
`);
  const facts = {
    interfaces: new Map(
      [1, 2].map((i) => [
        `wan${i}`,
        { name: `wan${i}`, up: true, addresses: [{ family: 4 as const, text: `100.64.${i}.2` }] },
      ]),
    ),
  };
  const text = "";
  const model = new DaemonModel({ config, file: "t.yaml", text, locate: (i) => i });
  const before = desiredState(config, model.input().health, facts);
  model.observeRound({
    name: "isp2",
    state: "down",
    reason: "test",
    rttMs: 0,
    jitterMs: 0,
    loss: 1,
    quality: 0,
    since: 1,
  });
  const after = desiredState(config, model.input().health, facts, before.services);
  assert.equal(after.uplinks?.uplinks.find((u) => u.name === "isp2")?.live, false);
  // Every service is the very plan in force, and so are its objects.
  assert.deepEqual(
    after.services?.services.map((s, i) => s === before.services?.services[i]),
    [true, true],
  );
  const objects = (d: Desired) => d.model.tables[0]?.objects ?? [];
  const named = (d: Desired, name: string) => objects(d).find((o) => o.name === name);
  // Round-robin and maglev slots live in their group's shared map (src/plan/nft-groups.ts).
  const webSlots = groupSlotsMap(4, "tcp", groupOf("web"));
  const dnsSlots = groupSlotsMap(4, "udp", groupOf("dns"));
  for (const name of ["svc_web", "svc_dns", webSlots, dnsSlots, "svc_dispatch4", "svc_vips4"]) {
    assert.ok(named(before, name), `${name} is in the model`);
    assert.equal(named(after, name), named(before, name), name);
  }
  // The rule's prefix sets keep their element lists.
  const prefixSets = objects(before).filter((o) => o.kind === "set" && o.name.startsWith("rule"));
  assert.ok(prefixSets.length > 0);
  for (const s of prefixSets) {
    const a = named(after, s.name);
    assert.ok(a?.kind === "set" && s.kind === "set" && a.elements === s.elements, s.name);
  }
  const d = diff(before.model, after.model);
  assert.ok(d.script.length > 0);
  assert.doesNotMatch(d.script, /svc_|rule_\w+_dst/);
});
