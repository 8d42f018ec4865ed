// A cold plan of maglev services dealt from the live table (src/plan/maglev-seed.ts): a restart
// with the config in force moves no slot, even when that table had been dealt by config edits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";
import { maglevSeed, parseMap } from "../../src/plan/maglev-seed.ts";
import type { Facts } from "../../src/plan/types.ts";

const facts: Facts = { interfaces: new Map() };
const yaml = (backends: string[]) =>
  parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:80
    scheduler: maglev
    backends:
${backends.map((b) => `      - { address: "${b}" }`).join("\n")}
  dns:
    listen: "[2001:db8:203::10]:53"
    protocol: udp
    scheduler: maglev
    backends:
      - { address: "[2001:db8:51::11]:53" }
      - { address: "[2001:db8:51::12]:53" }
      - { address: "[2001:db8:51::13]:53" }
`);
const three = ["198.51.100.1:80", "198.51.100.2:80", "198.51.100.3:80"];
const four = [...three, "198.51.100.4:80"];
const slotsOf = (d: ReturnType<typeof desiredState>, name: string) =>
  d.services?.services.find((s) => s.name === name)?.slots ?? [];

test("a restart after an edit: the cold plan seeded from the live table keeps every slot", () => {
  const c0 = yaml(three);
  const applied0 = desiredState(c0, allHealthy(c0), facts);
  // The edit, as the daemon plans it: the new table dealt from the one in force.
  const c1 = yaml(four);
  const inForce = desiredState(c1, allHealthy(c1), facts, applied0.services);
  // A restart: a fresh config object, nothing planned yet.
  const cold = yaml(four);
  const plain = desiredState(cold, allHealthy(cold), facts);
  const moved = slotsOf(plain, "web").filter((k, i) => k !== slotsOf(inForce, "web")[i]).length;
  assert.ok(moved > 0, "without the seed, a cold plan populates afresh and moves slots");
  const again = yaml(four);
  const seed = maglevSeed(again, inForce.nft);
  assert.ok(seed);
  const seeded = desiredState(again, allHealthy(again), facts, seed);
  assert.deepEqual(slotsOf(seeded, "web"), slotsOf(inForce, "web"));
  assert.deepEqual(slotsOf(seeded, "dns"), slotsOf(inForce, "dns"), "IPv6, UDP");
});

test("a live table that does not fit seeds nothing for that service", () => {
  const c = yaml(three);
  const live = desiredState(c, allHealthy(c), facts).nft;
  // A backend no longer configured holds slots: no seed for web; dns still fits.
  const other = yaml(["198.51.100.1:80", "198.51.100.2:80", "198.51.100.9:80"]);
  assert.deepEqual(
    maglevSeed(other, live)?.services.map((s) => s.name),
    ["dns"],
  );
  assert.equal(maglevSeed(c, ""), null);
});

test("parseMap reads nft's multi-line listing", () => {
  const text = `table inet nflb {
	map svc_slots4_tcp_1 {
		typeof ip daddr . tcp dport . numgen inc mod 1 : ip daddr . tcp dport
		elements = { 203.0.113.10 . 80 . 0 : 198.51.100.1 . 80,
			     203.0.113.10 . 80 . 1 : 198.51.100.2 . 80 }
	}
	map svc_slots6_udp_1 {
		typeof ip6 daddr . udp dport . numgen inc mod 1 : ip6 daddr . udp dport
		elements = { 2001:db8::1 . 53 . 0 : 2001:db8::10 . 53 }
	}
}`;
  assert.deepEqual(
    [...parseMap(text, "svc_slots4_tcp_1")],
    [
      ["203.0.113.10 . 80 . 0", "198.51.100.1 . 80"],
      ["203.0.113.10 . 80 . 1", "198.51.100.2 . 80"],
    ],
  );
  assert.deepEqual([...parseMap(text, "svc_slots6_udp_1")], [["2001:db8::1 . 53 . 0", "2001:db8::10 . 53"]]);
  assert.equal(parseMap(text, "svc_slots4_tcp_2").size, 0);
});
