// Issue 2, "what it must show" 1, 4 and IPv6: real connections from the LAN, counted at the far end.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import { bySourceSeen, ConfigDir, nflbOk, percent } from "./support/nflb.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

describe("uplinks: balancing real connections", { skip, timeout: 300_000 }, () => {
  const lab = new UplinkLab({ uplinks: 3, v6: true, clientAddresses: 40 });
  const cfg = new ConfigDir();
  const echo = lab.ports.echo;

  before(() => lab.build(), { timeout: 90_000 });
  after(async () => {
    await lab.destroy();
    cfg.cleanup();
  });

  const config = (balance: string, rules = "", weights = [5, 3, 2]) =>
    cfg.write(`version: 1
uplinks:
${lab.uplinks
  .map(
    (u, i) => `  isp${u.index}:
    interface: ${u.wanIf}
    gateway: [${u.gateway4}, "${u.gateway6}"]
    weight: ${weights[i]}`,
  )
  .join("\n")}
balance:
  from: [lan0]
${balance}
${rules}
`);

  const apply = (file: string) => nflbOk(lab, "router", ["apply", "-c", file]);
  const addrOf = (i: number) => lab.uplink(i).router4;

  test(
    "random 5:3:2 over 3,000 connections is within ±2.5 points of 50/30/20",
    { timeout: 180_000 },
    async () => {
      await apply(config("  method: random"));
      const r = await lab.runClient({
        from: "lan",
        dst: lab.addr.server4,
        port: echo,
        count: 3000,
        parallel: 16,
        deadlineMs: 150_000,
      });
      assert.equal(r.failed, 0, r.errors.join("; "));
      const seen = bySourceSeen(r);
      const want = [50, 30, 20];
      lab.uplinks.forEach((u, i) => {
        const got = percent(seen[addrOf(u.index)] ?? 0, r.ok);
        assert.ok(
          Math.abs(got - (want[i] ?? 0)) <= 2.5,
          `isp${u.index}: ${got.toFixed(1)}% (want ${want[i]}±2.5), all: ${JSON.stringify(seen)}`,
        );
      });
    },
  );

  test("round-robin follows the weighted rotation exactly", { timeout: 60_000 }, async () => {
    await apply(config("  method: round-robin"));
    const r = await lab.runClient({
      from: "lan",
      dst: lab.addr.server4,
      port: echo,
      count: 300,
      parallel: 1,
      deadlineMs: 50_000,
    });
    assert.equal(r.failed, 0, r.errors.join("; "));
    const seen = bySourceSeen(r);
    assert.deepEqual(
      lab.uplinks.map((u) => seen[addrOf(u.index)] ?? 0),
      [150, 90, 60],
    );
  });

  test("source-hash keeps each source on one uplink and uses them all", { timeout: 60_000 }, async () => {
    await apply(config("  method: source-hash"));
    const sources = lab.addr.lan.extra;
    const r = await lab.runClient({
      from: "lan",
      dst: lab.addr.server4,
      port: echo,
      count: sources.length * 5,
      parallel: 8,
      sources,
      deadlineMs: 50_000,
    });
    assert.equal(r.failed, 0, r.errors.join("; "));
    const used = new Set<string>();
    for (const [src, lines] of Object.entries(r.bySource)) {
      const peers = new Set(Object.keys(lines).map((l) => l.split(" ").pop()));
      assert.equal(peers.size, 1, `source ${src} used ${[...peers].join(", ")}`);
      used.add([...peers][0] ?? "");
    }
    assert.equal(used.size, 3, `uplinks used: ${[...used].join(", ")}`);
  });

  test("IPv6 is balanced from the same config", { timeout: 60_000 }, async () => {
    await apply(config("  method: round-robin"));
    const r = await lab.runClient({
      from: "lan",
      dst: lab.addr.server6,
      port: echo,
      count: 100,
      parallel: 1,
      deadlineMs: 40_000,
    });
    assert.equal(r.failed, 0, r.errors.join("; "));
    const seen = bySourceSeen(r);
    assert.deepEqual(
      lab.uplinks.map((u) => seen[u.router6] ?? 0),
      [50, 30, 20],
    );
  });

  test("rules: a pinned destination, via main, and a sticky pair", { timeout: 90_000 }, async () => {
    const [t1, t2] = lab.addr.targets4;
    // The main table's default route goes via isp3, which has weight 0 (a backup): only `via: main` can use it.
    await lab.run("router", ["ip", "route", "replace", "default", "via", lab.uplink(3).gateway4]);
    try {
      await apply(
        config(
          "  method: random",
          `rules:
  - { name: pinned, destination: [${t1}/32], via: [isp2, isp1] }
  - { name: lan-peers, destination: [${t2}/32], via: main }
  - { name: sticky, destination: [${lab.addr.server4}/32], sticky: 30m }`,
          [1, 1, 0],
        ),
      );
      const pinned = await lab.runClient({
        from: "lan",
        dst: t1 ?? "",
        port: echo,
        count: 100,
        parallel: 8,
        deadlineMs: 30_000,
      });
      assert.deepEqual(bySourceSeen(pinned), { [addrOf(2)]: 100 }, "via [isp2, isp1] always leaves via isp2");
      const main = await lab.runClient({
        from: "lan",
        dst: t2 ?? "",
        port: echo,
        count: 50,
        parallel: 8,
        deadlineMs: 30_000,
      });
      assert.deepEqual(
        bySourceSeen(main),
        { [addrOf(3)]: 50 },
        "via main follows the main table (default via isp3)",
      );
      const sticky = await lab.runClient({
        from: "lan",
        dst: lab.addr.server4,
        port: echo,
        count: 100,
        parallel: 4,
        deadlineMs: 30_000,
      });
      assert.equal(sticky.ok, 100, sticky.errors.join("; "));
      assert.equal(
        Object.keys(bySourceSeen(sticky)).length,
        1,
        `sticky pair spread: ${JSON.stringify(bySourceSeen(sticky))}`,
      );
      const other = await lab.runClient({
        from: "lan",
        dst: lab.addr.server4,
        port: echo,
        count: 100,
        parallel: 4,
        sources: lab.addr.lan.extra,
        deadlineMs: 30_000,
      });
      assert.equal(
        Object.keys(bySourceSeen(other)).length,
        2,
        "other sources are still balanced over isp1 and isp2",
      );
    } finally {
      await lab.run("router", ["ip", "route", "del", "default"]);
    }
  });

  test(
    "router-originated: bound sockets use their uplink, unbound ones the primary",
    { timeout: 60_000 },
    async () => {
      await apply(config("  method: random\n  primary: [isp2, isp1, isp3]"));
      const bound = await lab.runClient({
        from: "router",
        dst: lab.addr.server4,
        port: echo,
        count: 20,
        sources: [addrOf(3)],
        deadlineMs: 20_000,
      });
      assert.deepEqual(bySourceSeen(bound), { [addrOf(3)]: 20 });
      const before3 = (await lab.ispCounters(3)).forwardedOut.packets;
      const unbound = await lab.runClient({
        from: "router",
        dst: lab.addr.server4,
        port: echo,
        count: 20,
        deadlineMs: 20_000,
      });
      assert.deepEqual(bySourceSeen(unbound), { [addrOf(2)]: 20 });
      assert.equal(
        (await lab.ispCounters(3)).forwardedOut.packets,
        before3,
        "unbound traffic did not touch isp3",
      );
    },
  );
});
