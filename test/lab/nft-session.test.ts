// The daemon's `nft -i` session (src/system/nft-session.ts) against the real nft 1.0.6 and kernel,
// in a namespace of its own: what the unit test's stand-in can only imitate. A transaction is
// atomic (a failing command undoes the others), nft's own error reaches the caller, and the
// session goes on after it. Needs root, iproute2 and nft.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { cleanupStale, destroyLabPrefix, writeOwnerFile } from "../../src/lab/cleanup.ts";
import { netnsName, newLabPrefix } from "../../src/lab/names.ts";
import { addNetns, labUnavailableReason } from "../../src/lab/netns.ts";
import { exec } from "../../src/system/exec.ts";
import { NftError } from "../../src/system/nft.ts";
import { NftSession } from "../../src/system/nft-session.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

describe("nft -i session against the kernel", { skip, timeout: 60_000 }, () => {
  const prefix = newLabPrefix();
  const ns = netnsName(prefix, "nft");
  const session = new NftSession({ argv: ["ip", "netns", "exec", ns, "nft", "-i"], timeoutMs: 10_000 });
  const elements = async () => {
    const r = await exec(["ip", "netns", "exec", ns, "nft", "-j", "list", "set", "inet", "nflbt", "s"], {
      timeoutMs: 10_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const set = (JSON.parse(r.stdout) as { nftables: { set?: { elem?: number[] } }[] }).nftables.find(
      (o) => o.set,
    )?.set;
    return [...(set?.elem ?? [])].sort((a, b) => a - b);
  };

  before(async () => {
    await cleanupStale();
    await writeOwnerFile(prefix);
    await addNetns(ns);
  });
  after(async () => {
    session.close();
    await destroyLabPrefix(prefix);
  });

  test("applied, refused (nothing changed, nft's words), applied again: one transaction each", async () => {
    assert.equal(
      await session.apply("add table inet nflbt\nadd set inet nflbt s { type inet_service; }\n"),
      true,
    );
    assert.equal(await session.apply("add element inet nflbt s { 1, 2 }\n"), true);
    assert.deepEqual(await elements(), [1, 2]);
    // A good add and a delete of an element that is not there: nft refuses the batch, the add is undone.
    await assert.rejects(
      session.apply("add element inet nflbt s { 3 }\ndelete element inet nflbt s { 9 }\n"),
      (e: unknown) => {
        assert.ok(e instanceof NftError, String(e));
        assert.match(e.message, /Error: Could not process rule: No such file or directory/);
        assert.doesNotMatch(e.message, /nflb_done/);
        return true;
      },
    );
    assert.deepEqual(await elements(), [1, 2], "the refused transaction changed nothing");
    // The session goes on, and a transaction of several commands applies whole.
    assert.equal(
      await session.apply("delete element inet nflbt s { 1 }\nadd element inet nflbt s { 3, 4 }\n"),
      true,
    );
    assert.deepEqual(await elements(), [2, 3, 4]);
  });
});
