// Issue 6: `nflb exec --via UPLINK -- COMMAND` runs one command on the router whose traffic leaves
// by that uplink, while the router's other traffic keeps to the primary; nothing is left behind.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { readdir } from "node:fs/promises";
import { cgroup2Mounts } from "../../src/system/cgroup.ts";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { clientArgs, toolArgv } from "../../src/lab/traffic.ts";
import { parseClientSummary } from "../../src/lab/traffic-summary.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import { bySourceSeen, ConfigDir, NFLB, nflb, nflbOk } from "./support/nflb.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

describe("nflb exec --via", { skip, timeout: 240_000 }, () => {
  const lab = new UplinkLab({ uplinks: 3 });
  const cfg = new ConfigDir();
  let file = "";

  before(
    async () => {
      await lab.build();
      file = cfg.write(`version: 1
uplinks:
${lab.uplinks
  .map((u) => `  isp${u.index}: { interface: ${u.wanIf}, gateway: ${u.gateway4}, weight: 1 }`)
  .join("\n")}
balance:
  from: [lan0]
  primary: [isp1, isp2, isp3]
`);
      await nflbOk(lab, "router", ["apply", "-c", file]);
    },
    { timeout: 90_000 },
  );
  after(async () => {
    await lab.destroy();
    cfg.cleanup();
  });

  const client = (count: number) =>
    clientArgs({ from: "router", dst: lab.addr.server4, port: lab.ports.echo, count, deadlineMs: 20_000 });

  test(
    "the command's connections leave by isp2; unbound traffic still by the primary",
    { timeout: 90_000 },
    async () => {
      const r = await nflb(
        lab,
        "router",
        ["exec", "--via", "isp2", "-c", file, "--", ...toolArgv("client", client(20))],
        60_000,
      );
      assert.equal(r.code, 0, r.stderr);
      const via = parseClientSummary(r.stdout);
      assert.equal(via.ok, 20, via.errors.join("; "));
      assert.deepEqual(bySourceSeen(via), { [lab.uplink(2).router4]: 20 });

      const plain = await lab.runClient({
        from: "router",
        dst: lab.addr.server4,
        port: lab.ports.echo,
        count: 20,
        deadlineMs: 20_000,
      });
      assert.deepEqual(bySourceSeen(plain), { [lab.uplink(1).router4]: 20 });
    },
  );

  test(
    "any uplink can be tested by hand; the exit status is the command's",
    { timeout: 90_000 },
    async () => {
      const r = await nflb(
        lab,
        "router",
        ["exec", "--via", "isp3", "-c", file, "--", ...toolArgv("client", client(5))],
        60_000,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(bySourceSeen(parseClientSummary(r.stdout)), { [lab.uplink(3).router4]: 5 });
      const failing = await nflb(lab, "router", [
        "exec",
        "--via",
        "isp3",
        "-c",
        file,
        "--",
        "sh",
        "-c",
        "exit 7",
      ]);
      assert.equal(failing.code, 7);
      const missing = await nflb(lab, "router", [
        "exec",
        "--via",
        "isp3",
        "-c",
        file,
        "--",
        "/nonexistent/tool",
      ]);
      assert.equal(missing.code, 127);
      assert.match(missing.stderr, /command not found/);
    },
  );

  test("afterwards: no element, no cgroup; unknown uplinks are refused", async () => {
    const map = await lab.run("router", ["nft", "-j", "list", "map", "inet", "nflb", "exec_via"]);
    assert.doesNotMatch(map, /"elem"/, map);
    const bad = await nflb(lab, "router", ["exec", "--via", "isp9", "-c", file, "--", "true"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no uplink isp9 in the config \(uplinks: isp1, isp2, isp3\)/);
    // The cgroups live in the host's one hierarchy, whatever the namespace: none may be left there.
    for (const m of await cgroup2Mounts()) {
      const left = (await readdir(m)).filter((n) => n.startsWith("nflb-exec-"));
      assert.deepEqual(left, [], `${m}: ${left.join(", ")}`);
    }
  });
  test("SIGTERM to nflb exec stops the command and cleans up", { timeout: 60_000 }, async () => {
    const p = lab.spawn("router", [NFLB, "exec", "--via", "isp2", "-c", file, "--", "sleep", "30"]);
    try {
      let held = "";
      for (let i = 0; i < 100 && !held.includes('"elem"'); i++) {
        await new Promise((r) => setTimeout(r, 100));
        held = await lab.run("router", ["nft", "-j", "list", "map", "inet", "nflb", "exec_via"]);
      }
      assert.match(held, /up_isp2_pin/, "the element is there while the command runs");
      process.kill(p.pid, "SIGTERM");
      // The tracked process is unref'd: keep the loop alive while waiting for it (bounded by the test).
      const keep = setInterval(() => undefined, 1000);
      const code = await p.exited.finally(() => clearInterval(keep));
      assert.equal(code, 128 + 15, `the command's status, killed by SIGTERM: ${p.stderr()}`);
    } finally {
      await p.stop();
    }
    const map = await lab.run("router", ["nft", "-j", "list", "map", "inet", "nflb", "exec_via"]);
    assert.doesNotMatch(map, /"elem"/, map);
    for (const m of await cgroup2Mounts())
      assert.deepEqual(
        (await readdir(m)).filter((n) => n.startsWith("nflb-exec-")),
        [],
      );
  });
});
