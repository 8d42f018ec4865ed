import { test } from "node:test";
import assert from "node:assert/strict";
import { RollbackError } from "../../src/apply/dataplane.ts";

test("a failed rollback is reported with the apply error, not swallowed", () => {
  const e = new RollbackError(
    new Error("nft: No such file or directory"),
    new Error("RTNETLINK answers: File exists"),
  );
  assert.match(
    e.message,
    /^apply failed: nft: No such file or directory; rolling the routing back failed too: RTNETLINK answers: File exists/,
  );
  assert.equal((e.applyError as Error).message, "nft: No such file or directory");
});
