import { test } from "node:test";
import assert from "node:assert/strict";
import { keysWithMark, keyText } from "../../src/system/conntrack-marks.ts";
import { hookEnv, OnChangeHook } from "../../src/daemon/on-change.ts";
import { silentLog } from "../../src/daemon/log.ts";

// As printed by `nft -j list map inet nflb rule_0_sticky4|6` (nft 1.0.6), metainfo removed.
const sticky4 = [
  {
    map: {
      family: "inet",
      name: "rule_0_sticky4",
      table: "nflb",
      type: ["ipv4_addr", "ipv4_addr"],
      map: "mark",
      elem: [
        [{ elem: { val: { concat: ["198.18.0.2", "203.0.113.10"] }, expires: 1799 } }, 256],
        [{ elem: { val: { concat: ["198.18.0.3", "203.0.113.10"] }, expires: 1799 } }, 512],
        [{ concat: ["198.18.0.4", "203.0.113.10"] }, 0x10100],
      ],
    },
  },
];
const sticky6 = [
  {
    map: {
      name: "rule_0_sticky6",
      type: "integer",
      map: "mark",
      elem: [
        [{ elem: { val: 777, expires: 1799 } }, 512],
        [{ elem: { val: 12345, expires: 1799 } }, 256],
      ],
    },
  },
];

test("sticky entries of one uplink's mark, under nflb's mask", () => {
  assert.deepEqual(keysWithMark(sticky4, 0x100, 0xff00), [
    "198.18.0.2 . 203.0.113.10",
    "198.18.0.4 . 203.0.113.10",
  ]);
  assert.deepEqual(keysWithMark(sticky6, 0x100, 0xff00), ["12345"]);
  assert.deepEqual(keysWithMark(sticky6, 0x300, 0xff00), []);
  assert.deepEqual(keysWithMark([], 0x100, 0xff00), []);
});

test("only plain addresses and numbers become nft text", () => {
  assert.equal(keyText({ concat: ["2001:db8::1", "2001:db8::2"] }), "2001:db8::1 . 2001:db8::2");
  assert.equal(keyText(42), "42");
  assert.equal(keyText("1.2.3.4; flush ruleset"), null);
  assert.equal(keyText({ concat: ["1.2.3.4", "}"] }), null);
  assert.equal(keyText({ range: [1, 2] }), null);
});

test("the on_change hook gets the change in its environment, one at a time, in order", async () => {
  const seen: string[] = [];
  let running = 0;
  const hook = new OnChangeHook(["/bin/hook", "--x"], silentLog, async (argv, env) => {
    running++;
    assert.equal(running, 1, "never two hooks at once");
    await new Promise((r) => setTimeout(r, 5));
    seen.push(`${argv.join(" ")} ${env.NFLB_KIND} ${env.NFLB_NAME} ${env.NFLB_STATE} ${env.NFLB_REASON}`);
    running--;
    return { code: 0, stdout: "", stderr: "" };
  });
  const ev = (id: number, state: string) => ({
    id,
    at: "2025-01-01T00:00:00.000Z",
    kind: "uplink" as const,
    name: "isp1",
    state,
    reason: `r${id}`,
  });
  hook.notify(ev(1, "down"));
  hook.notify(ev(2, "up"));
  hook.notify({ ...ev(3, "reloaded"), kind: "daemon" });
  await hook.idle();
  assert.deepEqual(seen, ["/bin/hook --x uplink isp1 down r1", "/bin/hook --x uplink isp1 up r2"]);
  const env = hookEnv({ ...ev(4, "down"), kind: "backend", service: "web", backend: "10.1.1.1:80" }, {});
  assert.deepEqual(env, {
    NFLB_KIND: "backend",
    NFLB_NAME: "isp1",
    NFLB_STATE: "down",
    NFLB_REASON: "r4",
    NFLB_TIME: "2025-01-01T00:00:00.000Z",
    NFLB_SERVICE: "web",
    NFLB_BACKEND: "10.1.1.1:80",
  });
});
