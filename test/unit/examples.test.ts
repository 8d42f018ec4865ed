// Issue 6, "what it must show" 5: every example config passes `nflb check`, plans to a data plane,
// and shows the seed scenario it is named after.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, test } from "node:test";
import { parseConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { allHealthy, desiredState } from "../../src/plan/desired.ts";

const run = promisify(execFile);
const NFLB = fileURLToPath(new URL("../../bin/nflb", import.meta.url));
const dir = new URL("../../examples/", import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
const load = (f: string): Config => parseConfig(readFileSync(new URL(f, dir), "utf8"), f);

/** What each seed's scenario needs its example to show. */
const scenarios: Record<string, (c: Config) => void> = {
  "two-links-failover.yaml": (c) => {
    assert.deepEqual(
      Object.values(c.uplinks ?? {}).map((u) => u.weight),
      [3, 1],
    );
    assert.deepEqual(c.balance.primary, ["isp1", "isp2"]);
    assert.ok(Object.values(c.uplinks ?? {}).every((u) => u.probe.targets.length >= 2));
  },
  "three-links-preferred.yaml": (c) => {
    assert.equal(Object.keys(c.uplinks ?? {}).length, 3);
    assert.ok(c.rules.some((r) => Array.isArray(r.via) && r.via.length > 1));
    assert.ok(c.rules.some((r) => r.via === "main"));
    assert.ok(c.rules.some((r) => r.sticky !== undefined));
    assert.equal(c.balance.local, "primary");
  },
  "vpn-tunnels.yaml": (c) => {
    const tunnels = Object.values(c.uplinks ?? {}).filter((u) => /^(wg|tun)\d/.test(u.interface));
    assert.equal(tunnels.length, 2);
    assert.ok(tunnels.every((u) => u.gateway === undefined));
    assert.deepEqual(tunnels.map((u) => u.nat).sort(), ["masquerade", "none"]);
  },
  "web-vip.yaml": (c) => {
    const web = c.services?.web;
    assert.ok(web);
    assert.equal(web.check.method, "http");
    assert.ok(
      web.backends.some((b) => b.weight === 0),
      "a draining backend",
    );
    assert.equal(c.uplinks, undefined);
  },
  "overflow-metered.yaml": (c) => {
    assert.equal(c.balance.method, "overflow");
    assert.deepEqual(c.uplinks?.fibre?.capacity, { down: 100_000_000, up: 20_000_000 });
    assert.equal(c.uplinks?.lte?.metered, true);
    assert.ok(c.rules.some((r) => Array.isArray(r.via) && r.via[0] === "lte"));
    // Installed with every link healthy: the balance is all fibre; the rule still reaches lte.
    const u = desiredState(c, allHealthy(c), { interfaces: new Map() }).uplinks;
    assert.deepEqual([...new Set(u?.split?.slots)], ["fibre"]);
  },
  "cluster-three-nodes.yaml": (c) => {
    assert.ok(c.cluster);
    assert.equal(c.cluster.etcd.length, 3);
  },
};

describe("example configs", () => {
  test("there is one example per seed scenario", () => {
    assert.deepEqual([...files].sort(), Object.keys(scenarios).sort());
  });

  for (const f of files) {
    test(`${f}: nflb check --offline passes`, async () => {
      const { stdout } = await run(NFLB, ["check", "--offline", "-c", fileURLToPath(new URL(f, dir))], {
        timeout: 30_000,
      });
      assert.match(stdout, /: valid/);
    });

    test(`${f}: plans a data plane and shows its scenario`, () => {
      const c = load(f);
      const want = desiredState(c, allHealthy(c), { interfaces: new Map() });
      assert.match(want.nft, /^table inet nflb \{/m);
      scenarios[f]?.(c);
    });

    test(`${f}: explains its choices in comments and points editors at the schema`, () => {
      const text = readFileSync(new URL(f, dir), "utf8");
      assert.match(text, /^# yaml-language-server: \$schema=\.\.\/contrib\/nflb\.schema\.json$/m);
      assert.ok(text.split("\n").filter((l) => /^\s*#/.test(l)).length >= 10, "comments");
    });
  }
});
