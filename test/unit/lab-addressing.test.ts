import assert from "node:assert/strict";
import { isIP } from "node:net";
import { test } from "node:test";
import { extraClientAddresses, lanClientAddress, uplinkPlan } from "../../src/lab/addressing.ts";

test("uplink i uses 100.64.i.0/24 and 2001:db8:100:i::/64", () => {
  const u = uplinkPlan(3);
  assert.equal(u.wanIf, "wan3");
  assert.equal(u.router4, "100.64.3.2");
  assert.equal(u.gateway4, "100.64.3.1");
  assert.equal(u.prefix4, "100.64.3.0/24");
  assert.equal(u.router6, "2001:db8:100:3::2");
  assert.equal(u.gateway6, "2001:db8:100:3::1");
  assert.equal(u.inetSide4, "198.19.3.2");
  for (const a of [u.router4, u.gateway4, u.ispUp4, u.inetSide4]) assert.equal(isIP(a), 4);
  for (const a of [u.router6, u.gateway6, u.ispUp6, u.inetSide6]) assert.equal(isIP(a), 6);
});

test("uplink indexes are bounded", () => {
  assert.throws(() => uplinkPlan(0));
  assert.throws(() => uplinkPlan(9));
  assert.throws(() => uplinkPlan(1.5));
});

test("LAN clients and extra sources do not overlap the router", () => {
  assert.deepEqual(lanClientAddress(1), { v4: "198.18.0.2", v6: "2001:db8:1::2" });
  assert.deepEqual(lanClientAddress(8), { v4: "198.18.0.9", v6: "2001:db8:1::9" });
  const extra = extraClientAddresses(241);
  assert.equal(extra[0], "198.18.0.10");
  assert.equal(extra.at(-1), "198.18.0.250");
  assert.deepEqual(extraClientAddresses(0), []);
  assert.throws(() => extraClientAddresses(242));
});
