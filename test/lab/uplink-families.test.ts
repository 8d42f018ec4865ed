// Issue 15, "what it must show" 3: per-family health with `nflb run`, real probes and real
// connections counted at the far end. isp1's IPv6 gateway breaks (its ISP forwards no IPv6):
// new IPv6 connections all leave by isp2, IPv4 keeps isp1's share; restored, IPv6 returns.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import type { StatusJson } from "../../src/daemon/status.ts";
import {
  allUp,
  API_PORT,
  DaemonFixture,
  http,
  NFLB,
  sleep,
  status,
  waitStatus,
} from "../../testkit/daemon-harness.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

describe("nflb run: IPv4 and IPv6 of an uplink fail apart", { skip, timeout: 240_000 }, () => {
  const lab = new UplinkLab({ uplinks: 2, v6: true });
  const fx = new DaemonFixture(lab, () => {
    const targets = [...lab.addr.targets4, ...lab.addr.targets6.map((t) => `"${t}"`)].join(", ");
    const lines = ["version: 1", "uplinks:"];
    for (const u of lab.uplinks)
      lines.push(
        `  isp${u.index}:`,
        `    interface: ${u.wanIf}`,
        `    gateway: [${u.gateway4}, "${u.gateway6}"]`,
        `    probe: { targets: [${targets}] }`,
      );
    lines.push("balance:", "  from: [lan0]", "  method: round-robin");
    // An exception pinned to isp1 first: each family falls back on its own.
    const [t4] = lab.addr.targets4;
    const [t6] = lab.addr.targets6;
    lines.push("rules:", `  - { name: pinned, destination: [${t4}/32, "${t6}/128"], via: [isp1, isp2] }`);
    return lines.join("\n") + "\n";
  });

  before(() => fx.up(), { timeout: 90_000 });
  after(() => fx.down(), { timeout: 60_000 });

  /** 100 connections one after another (round-robin 1:1 → exactly 50/50): far-end source → count. */
  const batch = async (v6: boolean, dst = v6 ? lab.addr.server6 : lab.addr.server4, count = 100) => {
    const r = await lab.runClient({
      from: "lan",
      dst,
      port: lab.ports.echo,
      count,
      parallel: 1,
      timeoutMs: 2000,
      deadlineMs: 40_000,
    });
    assert.equal(r.failed, 0, r.errors.join("; "));
    const out: Record<string, number> = {};
    for (const [line, n] of Object.entries(r.bySeen)) {
      const src = line.split(" ").pop() ?? line;
      const u = lab.uplinks.find((x) => x.router4 === src || x.router6 === src);
      const key = u ? `isp${u.index}` : src;
      out[key] = (out[key] ?? 0) + n;
    }
    return out;
  };
  const fam = (s: StatusJson, name: string, f: "ipv4" | "ipv6") =>
    s.uplinks.find((u) => u.name === name)?.families?.[f];

  test(
    "isp1's IPv6 gateway breaks: IPv6 leaves by isp2 alone, IPv4 keeps isp1's share; restored, IPv6 returns",
    { timeout: 150_000 },
    async (t) => {
      const s0 = await waitStatus(
        lab,
        (s) =>
          allUp(s) && (fam(s, "isp1", "ipv6")?.share ?? 0) > 0 && fam(s, "isp1", "ipv6")?.probed === true,
        15_000,
        "both families of both uplinks up",
      );
      assert.deepEqual(
        s0.uplinks.map((u) => [u.name, u.families?.ipv4.state, u.families?.ipv6.state]),
        [
          ["isp1", "up", "up"],
          ["isp2", "up", "up"],
        ],
      );
      assert.deepEqual(await batch(false), { isp1: 50, isp2: 50 }, "IPv4 before");
      assert.deepEqual(await batch(true), { isp1: 50, isp2: 50 }, "IPv6 before");
      assert.deepEqual(await batch(true, lab.addr.targets6[0], 20), { isp1: 20 }, "rule, IPv6 before");

      const cut = Date.now();
      await lab.cutUpstream6(1);
      const down = await waitStatus(
        lab,
        (s) => fam(s, "isp1", "ipv6")?.state === "down" && fam(s, "isp1", "ipv6")?.share === 0,
        10_000,
        "isp1 IPv6 down and out of the IPv6 split",
      );
      const detectMs = Date.now() - cut;
      const logged = (msg: string) =>
        (fx.daemon?.logs() ?? []).filter((l) => Date.parse(String(l.time)) >= cut && l.msg === msg);
      const downAt = Date.parse(String(logged("uplink isp1 IPv6 down")[0]?.time));
      const appliedAt = Date.parse(String(logged("applied (update)")[0]?.time));
      t.diagnostic(
        `daemon: isp1 IPv6 down ${downAt - cut} ms after the cut, new IPv6 split applied at ${appliedAt - cut} ms`,
      );
      t.diagnostic(
        `isp1 IPv6 down and out of the split ${detectMs} ms after the cut (status polled every 100 ms)`,
      );
      // Default probes: 200 ms rounds, down_after 3, 500 ms timeout, plus the fast re-probe: the
      // same schedule as a whole uplink (daemon-failover bounds new connections at 1.5 s).
      assert.ok(detectMs < 2500, `IPv6 down after ${detectMs} ms`);
      const isp1 = down.uplinks.find((u) => u.name === "isp1");
      assert.equal(isp1?.state, "up", "the uplink stays up: its IPv4 works");
      assert.equal(isp1?.families?.ipv4.state, "up");
      assert.equal(isp1?.families?.ipv4.share, 0.5);
      assert.match(isp1?.families?.ipv6.reason ?? "", /round/);
      assert.equal(fam(down, "isp2", "ipv6")?.share, 1);

      assert.deepEqual(await batch(true), { isp2: 100 }, "IPv6 while isp1's IPv6 is broken");
      assert.deepEqual(await batch(false), { isp1: 50, isp2: 50 }, "IPv4 unchanged");
      // The rule `via: [isp1, isp2]`: IPv4 still by isp1, IPv6 by the next in its list.
      const pinned4 = lab.addr.targets4[0] ?? "";
      const pinned6 = lab.addr.targets6[0] ?? "";
      assert.deepEqual(await batch(false, pinned4, 20), { isp1: 20 }, "rule, IPv4");
      assert.deepEqual(await batch(true, pinned6, 20), { isp2: 20 }, "rule, IPv6 falls back to isp2");

      // The daemon said so: a family event and log, the metrics, and `nflb status`.
      const logs = fx.daemon?.logs() ?? [];
      assert.ok(
        logs.some((l) => l.msg === "uplink isp1 IPv6 down" && l.family === "ipv6"),
        "log of the family going down",
      );
      assert.ok(!logs.some((l) => l.msg === "uplink isp1 down"), "the uplink itself never went down");
      const metrics = await http(lab, "router", "GET", `http://127.0.0.1:${API_PORT}/metrics`);
      assert.match(metrics.body, /nflb_uplink_family_up\{uplink="isp1",family="ipv6"\} 0/);
      assert.match(metrics.body, /nflb_uplink_family_up\{uplink="isp1",family="ipv4"\} 1/);
      assert.match(metrics.body, /nflb_uplink_up\{uplink="isp1"\} 1/);
      // (exit status: whatever `status` says of a degraded box; the text is what matters here)
      const { stdout: text } = await lab.exec("router", [NFLB, "status", "--api", `127.0.0.1:${API_PORT}`], {
        timeoutMs: 15_000,
      });
      assert.match(text, /isp1\s+ipv6\s+down/);
      assert.match(text, /isp1\s+ipv4\s+up/);

      const restored = Date.now();
      await lab.restoreUpstream6(1);
      await sleep(500);
      const back = await waitStatus(
        lab,
        (s) => fam(s, "isp1", "ipv6")?.state === "up" && (fam(s, "isp1", "ipv6")?.share ?? 0) > 0,
        20_000,
        "isp1 IPv6 up again",
      );
      t.diagnostic(`isp1 IPv6 back in the split ${Date.now() - restored} ms after the restore (up_after 10)`);
      assert.equal(fam(back, "isp1", "ipv6")?.share, 0.5);
      assert.deepEqual(await batch(true), { isp1: 50, isp2: 50 }, "IPv6 after the restore");
      assert.deepEqual(await batch(false), { isp1: 50, isp2: 50 }, "IPv4 after the restore");
      assert.deepEqual(await batch(true, lab.addr.targets6[0], 20), { isp1: 20 }, "rule, IPv6 back on isp1");
      const st = await status(lab);
      assert.ok(allUp(st));
    },
  );
});
