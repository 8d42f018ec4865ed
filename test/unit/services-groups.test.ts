// Slot maps shared by groups of services (src/plan/nft-groups.ts): what a change sends, and that
// each service still balances on its own (asserted through the fake nft and the tracer).
import { test } from "node:test";
import assert from "node:assert/strict";
import { diff } from "../../src/nft/diff.ts";
import { findObject, type NftTable } from "../../src/nft/model.ts";
import { groupSlotsMap } from "../../src/nft/names.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";
import { GROUPS, groupOf } from "../../src/plan/nft-groups.ts";
import type { Facts } from "../../src/plan/types.ts";
import { serviceYaml, servicesConfig } from "../../testkit/service-config.ts";
import { dnatOf, kernelWith, sharesBy, tcp, traceAll } from "./tracer-support.ts";

const facts: Facts = { interfaces: new Map() };

/** Two service names whose slots share one group map, and a third in another group. */
function names(): [string, string, string] {
  const byGroup = new Map<number, string>();
  let pair: [string, string] | undefined;
  for (let i = 0; !pair; i++) {
    const n = `s${i}`;
    const other = byGroup.get(groupOf(n));
    if (other) pair = [other, n];
    else byGroup.set(groupOf(n), n);
  }
  const [a, b] = pair;
  let c = "x0";
  for (let i = 1; groupOf(c) === groupOf(a); i++) c = `x${i}`;
  return [a, b, c];
}
const [A, B, C] = names();

/** A (round-robin), B (maglev) and C (round-robin), plus any `extra` services. */
const threeServices = (...extra: string[]) =>
  servicesConfig(
    serviceYaml(A, "203.0.113.10:80", "round-robin", [
      "198.51.100.11:80",
      "198.51.100.12:80",
      "198.51.100.13:80",
    ]),
    serviceYaml(B, "203.0.113.11:80", "maglev", ["198.51.100.21:80", "198.51.100.22:80"]),
    serviceYaml(C, "203.0.113.12:80", "round-robin", ["198.51.100.31:80", "198.51.100.32:80"]),
    ...extra,
  );

test("group of a name: stable, within GROUPS", () => {
  assert.equal(groupOf("web"), groupOf("web"));
  for (const n of ["a", "web", "s4999", "x".repeat(63)]) assert.ok(groupOf(n) >= 0 && groupOf(n) < GROUPS);
});

test("services of one group share a map keyed VIP . port . slot; each keeps its own rule and rotation", () => {
  const c = threeServices();
  const m = desiredState(c, allHealthy(c), facts);
  const t = m.model.tables[0] as NftTable;
  const shared = findObject(t, "map", groupSlotsMap(4, "tcp", groupOf(A)));
  assert.ok(shared);
  const prefixes = new Set(shared.elements.map((e) => e.key.split(" . ").slice(0, 2).join(" . ")));
  assert.deepEqual([...prefixes].sort(), ["203.0.113.10 . 80", "203.0.113.11 . 80"]);
  assert.equal(findObject(t, "map", `svc_${A}_slots`), undefined);
  const k = kernelWith(m.nft);
  const rot = traceAll(k.ruleset, tcp("192.0.2.7", "203.0.113.10", 80)).map(dnatOf);
  assert.deepEqual([...rot].sort(), ["198.51.100.11:80", "198.51.100.12:80", "198.51.100.13:80"]);
  const hashed = sharesBy(traceAll(k.ruleset, tcp("192.0.2.7", "203.0.113.11", 80)), dnatOf);
  assert.deepEqual(Object.keys(hashed).length, 1, "one source, one maglev backend");
  assert.ok(["198.51.100.21:80", "198.51.100.22:80"].includes(Object.keys(hashed)[0] ?? ""));
});

test("a backend down: the transaction holds that service's chain and elements only", () => {
  const c = threeServices();
  const h = allHealthy(c);
  const before = desiredState(c, h, facts);
  const after = desiredState(c, { ...h, services: { [A]: { "198.51.100.12:80": { up: false } } } }, facts);
  const script = diff(before.model, after.model).script;
  const group = groupSlotsMap(4, "tcp", groupOf(A));
  for (const line of script.trim().split("\n")) {
    if (/^(table inet nflb \{|\}|\t\}|\t\ttypeof .*)$/.test(line)) continue;
    if (line === `\tmap ${group} {`) continue;
    if (line.startsWith(`flush chain inet nflb svc_${A}`) || line.startsWith(`add rule inet nflb svc_${A} `))
      continue;
    const els = line.startsWith(`delete element inet nflb ${group} { `)
      ? line.slice(line.indexOf("{ ") + 2, -2).split(", ")
      : line.startsWith("\t\telements = { ")
        ? line.slice(line.indexOf("{ ") + 2, -2).split(", ")
        : null;
    assert.ok(els, `unexpected line: ${line}\n${script}`);
    assert.ok(
      els.every((e) => e.startsWith("203.0.113.10 . 80 . ")),
      `another service's element: ${line}`,
    );
  }
  // The kernel's table after the update: A skips the dead backend, B is as before.
  const k = kernelWith(before.nft, script);
  const rot = traceAll(k.ruleset, tcp("192.0.2.7", "203.0.113.10", 80)).map(dnatOf);
  assert.deepEqual([...rot].sort(), ["198.51.100.11:80", "198.51.100.13:80"]);
  const k0 = kernelWith(before.nft);
  for (let i = 1; i < 20; i++) {
    const p = tcp(`192.0.2.${i}`, "203.0.113.11", 80);
    assert.deepEqual(traceAll(k.ruleset, p).map(dnatOf), traceAll(k0.ruleset, p).map(dnatOf));
  }
});

test("adding a service touches no other service's elements", () => {
  const c = threeServices();
  const more = threeServices(serviceYaml("added", "203.0.113.20:443", "round-robin", ["198.51.100.41:443"]));
  const script = diff(
    desiredState(c, allHealthy(c), facts).model,
    desiredState(more, allHealthy(more), facts).model,
  ).script;
  assert.doesNotMatch(script, /^delete element inet nflb svc_slots/m);
  assert.doesNotMatch(script, /^flush map/m);
  assert.doesNotMatch(script, /203\.0\.113\.1[012] \. 80 \. /);
});

test("least-conn in a shared map: its walk restarts when its own slots change, not another's", () => {
  const c = servicesConfig(
    serviceYaml(A, "203.0.113.10:80", "least-conn", ["198.51.100.11:80", "198.51.100.12:80"]),
    serviceYaml(B, "203.0.113.11:80", "least-conn", ["198.51.100.21:80", "198.51.100.22:80"]),
  );
  const h = allHealthy(c);
  const loaded = (svc: string, addr: string) => ({
    ...h,
    services: { [svc]: { [addr]: { up: true, connections: 40 } } },
  });
  const before = desiredState(c, h, facts);
  const t = before.model.tables[0] as NftTable;
  assert.ok(findObject(t, "map", groupSlotsMap(4, "tcp", groupOf(A))));
  assert.equal(findObject(t, "map", `svc_${A}_slots`), undefined);
  // A's first backend is busy: A's slots change (not their number), B's stay.
  const after = desiredState(c, loaded(A, "198.51.100.11:80"), facts);
  const script = diff(before.model, after.model).script;
  assert.match(script, new RegExp(`^flush chain inet nflb svc_${A}$`, "m"));
  assert.doesNotMatch(script, new RegExp(`svc_${B}\\b`));
  assert.doesNotMatch(script, /203\.0\.113\.11 \. 80 \. /);
  // From slot 0 on: the next connections all go to the idle backend first.
  const k = kernelWith(before.nft, script);
  const next = traceAll(k.ruleset, tcp("192.0.2.7", "203.0.113.10", 80)).map(dnatOf);
  assert.equal(next[0], "198.51.100.12:80");
});
