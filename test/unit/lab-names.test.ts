import assert from "node:assert/strict";
import { test } from "node:test";
import {
  hostLinkName,
  isLabPrefix,
  netnsName,
  newLabPrefix,
  ownerFilePath,
  prefixOfNetns,
  prefixOfOwnerFile,
} from "../../src/lab/names.ts";
import { formatOwner, parseOwner } from "../../src/lab/cleanup.ts";

test("prefixes are nl + 4 base36 chars + dash", () => {
  for (let i = 0; i < 50; i++) assert.ok(isLabPrefix(newLabPrefix()));
  assert.equal(
    newLabPrefix(() => 35),
    "nlzzzz-",
  );
  assert.equal(
    newLabPrefix(() => 0),
    "nl0000-",
  );
});

test("namespace names carry the prefix and map back to it", () => {
  assert.equal(netnsName("nlab12-", "router"), "nlab12-router");
  assert.equal(prefixOfNetns("nlab12-isp3"), "nlab12-");
  assert.equal(prefixOfNetns("t2"), undefined);
  assert.equal(prefixOfNetns("nlab12-"), undefined);
  assert.equal(prefixOfNetns("nlAB12-router"), undefined);
  assert.throws(() => netnsName("nlab12-", "Router"));
  assert.throws(() => netnsName("nlab12-", "a/b"));
});

test("host link name fits IFNAMSIZ and derives from the prefix", () => {
  const name = hostLinkName("nlab12-");
  assert.equal(name, "nflbhab12");
  assert.ok(name.length <= 15);
  assert.throws(() => hostLinkName("bogus"));
});

test("owner files round-trip", () => {
  assert.equal(ownerFilePath("nlab12-"), "/run/nflb-lab/nlab12-.pid");
  assert.equal(prefixOfOwnerFile("nlab12-.pid"), "nlab12-");
  assert.equal(prefixOfOwnerFile("nlab12-.pid.tmp"), undefined);
  assert.deepEqual(parseOwner(formatOwner({ pid: 42, startTime: 1234 })), { pid: 42, startTime: 1234 });
  assert.deepEqual(parseOwner("42\n"), { pid: 42 });
  assert.equal(parseOwner(""), undefined);
  assert.equal(parseOwner("abc"), undefined);
});
