import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { rebalance } from "../../src/cluster/ownership.ts";
import { parseConfig } from "../../src/config/load.ts";
import type { StatusJson } from "../../src/daemon/status.ts";
import { explain, type ExplainInputs } from "../../src/explain/explain.ts";
import { formatExplanation } from "../../src/explain/format.ts";
import { healthFromStatus } from "../../src/explain/live.ts";
import { parseQuery, type Query } from "../../src/explain/packet.ts";
import { addrBytes, concatKey, nftJhash, portBytes } from "../../src/nft/ruleset/jhash.ts";
import { parseAddr } from "../../src/net/ip.ts";
import { allHealthy, desiredState, type HealthView } from "../../src/plan/desired.ts";
import { planServices } from "../../src/plan/services.ts";
import { planCluster, buildCluster } from "../../src/cluster/render.ts";
import { objectsText } from "../../src/nft/serialize.ts";

const noFacts = { interfaces: new Map() };

function q(src: string, dst: string, proto?: string, port?: string, sport?: string): Query {
  const r = parseQuery({ src, dst, proto, port, sport });
  assert.ok(!("error" in r), JSON.stringify(r));
  return r;
}

const svcConfig = parseConfig(`version: 1
services:
  web:
    listen: 203.0.113.10:80
    scheduler: round-robin
    backends:
      - { address: 10.1.1.1:80, weight: 2 }
      - { address: 10.1.1.2:80 }
      - { address: 10.1.1.3:80, weight: 0 }
  tls:
    listen: 203.0.113.10:443
    scheduler: maglev
    backends: [{ address: 10.1.1.1:443 }, { address: 10.1.1.2:443 }, { address: 10.1.1.3:443 }]
  dns:
    listen: 203.0.113.10:53
    protocol: udp
    scheduler: source-hash
    backends: [{ address: 10.1.1.1:53 }, { address: 10.1.1.2:53 }]
`);

const inputs = (health: HealthView = allHealthy(svcConfig)): ExplainInputs => ({
  health,
  healthSource: "assumed: test",
  facts: noFacts,
});

describe("explain: services", () => {
  test("round-robin: the weighted rotation, without the draining backend", () => {
    const e = explain(svcConfig, q("198.51.100.7", "203.0.113.10", "tcp", "80"), inputs());
    assert.equal(e.kind, "service");
    const o = e.service?.outcome;
    assert.equal(o?.kind, "spread");
    assert.deepEqual(o?.kind === "spread" && o.rotation, ["10.1.1.1:80", "10.1.1.2:80", "10.1.1.1:80"]);
    assert.match(e.service?.trace.join("\n") ?? "", /10\.1\.1\.3:80 draining/);
  });

  for (const [name, port, proto, method] of [
    ["tls", "443", "tcp", "maglev"],
    ["dns", "53", "udp", "source-hash"],
  ] as const) {
    test(`${method}: the exact backend, with the modulus and seed of the nft script`, () => {
      const nft = desiredState(svcConfig, allHealthy(svcConfig), noFacts).nft;
      const m = new RegExp(
        `chain svc_${name} \\{\\s+meta l4proto ${proto} dnat ip to ip daddr \\. ${proto} dport \\. jhash ip saddr mod (\\d+) seed (0x[0-9a-f]+)`,
      ).exec(nft);
      assert.ok(m, nft);
      const slots = planServices(svcConfig, {})?.services.find((s) => s.name === name)?.slots ?? [];
      const seen = new Set<string>();
      for (let i = 1; i < 40; i++) {
        const src = `198.51.100.${i}`;
        const e = explain(svcConfig, q(src, "203.0.113.10", proto, port), inputs());
        const o = e.service?.outcome;
        assert.equal(o?.kind, "backend");
        const want: string | undefined =
          slots[nftJhash(addrBytes(parseAddr(src) ?? { family: 4, text: "" }), Number(m[1]), Number(m[2]))];
        assert.equal(o?.kind === "backend" && o.backend, want);
        seen.add(want ?? "");
      }
      assert.ok(seen.size >= 2);
    });
  }

  test("a down backend gets nothing; none left: dropped", () => {
    const one = explain(
      svcConfig,
      q("198.51.100.7", "203.0.113.10", "tcp", "80"),
      inputs({ uplinks: {}, services: { web: { "10.1.1.1:80": { up: false } } } }),
    );
    const o = one.service?.outcome;
    assert.deepEqual(o?.kind === "spread" && o.shares, [{ name: "10.1.1.2:80", share: 1 }]);
    const none = explain(
      svcConfig,
      q("198.51.100.7", "203.0.113.10", "tcp", "80"),
      inputs({
        uplinks: {},
        services: { web: { "10.1.1.1:80": { up: false }, "10.1.1.2:80": { up: false } } },
      }),
    );
    assert.equal(none.service?.outcome.kind, "drop");
    assert.match(formatExplanation(none), /dropped/);
  });

  test("the VIP without PROTO PORT: a hint at the services listening there", () => {
    const e = explain(svcConfig, q("198.51.100.7", "203.0.113.10"), inputs());
    assert.equal(e.kind, "none");
    assert.match(e.notes.join("\n"), /web tcp\/80, tls tcp\/443, dns udp\/53; give PROTO PORT/);
  });
});

describe("explain: cluster", () => {
  const cfg = (hash: string) =>
    parseConfig(`version: 1
cluster: { name: web, node: node-a, vip: 192.0.2.2, interface: eth0, buckets: 100, hash: ${hash} }
`);
  const assignment = rebalance(null, ["node-a", "node-b", "node-c"], 100);

  test("source: the bucket jhash gives, with the seed the input chain uses, and its owner in etcd", () => {
    const c = cfg("source");
    const p = planCluster(c.cluster!);
    assert.match(
      objectsText(buildCluster(p).section.objects),
      new RegExp(`mod 100 seed 0x${p.seed.toString(16).padStart(8, "0")}`),
    );
    for (const src of ["198.51.100.7", "198.51.100.8", "203.0.113.99"]) {
      const e = explain(c, q(src, "192.0.2.2", "tcp", "80"), { ...inputs(), assignment });
      const bucket = nftJhash(addrBytes(parseAddr(src) ?? { family: 4, text: "" }), 100, p.seed);
      assert.equal(e.kind, "cluster");
      assert.equal(e.cluster?.bucket, bucket);
      assert.equal(e.cluster?.node, assignment.owners[bucket]);
      assert.match(
        formatExplanation(e),
        new RegExp(`cluster node: ${assignment.owners[bucket]} \\(bucket ${bucket}\\)`),
      );
    }
  });

  test("source-port: needs the source port; etcd unknown: the bucket alone", () => {
    const c = cfg("source-port");
    const p = planCluster(c.cluster!);
    const without = explain(c, q("198.51.100.7", "192.0.2.2", "tcp", "80"), { ...inputs(), assignment });
    assert.equal(without.cluster?.bucket, null);
    const e = explain(c, q("198.51.100.7", "192.0.2.2", "tcp", "80", "40000"), inputs());
    const key = concatKey(addrBytes(parseAddr("198.51.100.7") ?? { family: 4, text: "" }), portBytes(40000));
    assert.equal(e.cluster?.bucket, nftJhash(key, 100, p.seed));
    assert.equal(e.cluster?.node, null);
    assert.match(e.cluster?.trace.join("\n") ?? "", /etcd, which did not answer/);
  });
});

describe("explain: reading the running system", () => {
  const c = parseConfig(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: 100.64.1.1, weight: 3 }
  isp2: { interface: wan2, gateway: 100.64.2.1, weight: 1 }
services:
  web:
    listen: 203.0.113.10:80
    backends: [{ address: 10.1.1.1:80 }, { address: 10.1.1.2:80 }, { address: 10.1.1.3:80 }]
`);
  const up = {
    interface: "",
    reason: "",
    since: null,
    share: 0,
    rtt_ms: null,
    jitter_ms: null,
    loss: 0,
    connections: 0,
    probed: true,
  };
  const be = { connections: 3, bytes_to_backend: null, bytes_from_backend: null, reason: "", since: null };
  const status: StatusJson = {
    uplinks: [
      { ...up, name: "isp1", state: "disabled", weight: 3, effective_weight: 0 },
      { ...up, name: "isp2", state: "up", weight: 1, effective_weight: 2 },
    ],
    services: [
      {
        name: "web",
        listen: "203.0.113.10:80",
        protocol: "tcp",
        backends: [
          { ...be, address: "10.1.1.1:80", state: "up", weight: 1 },
          { ...be, address: "10.1.1.2:80", state: "down", weight: 1 },
          { ...be, address: "10.1.1.3:80", state: "draining", weight: 1 },
        ],
      },
    ],
    cluster: null,
    applied_at: null,
    config_version: "x",
    config_file: "f",
    started_at: "",
    last_reload_error: null,
    keeping_last_data_plane: false,
  };

  test("the daemon's status becomes the health the planner uses", () => {
    assert.deepEqual(healthFromStatus(c, status), {
      uplinks: { isp1: { up: false }, isp2: { up: true, weight: 2 } },
      services: {
        web: {
          "10.1.1.1:80": { up: true, weight: 1, connections: 3 },
          "10.1.1.2:80": { up: false, weight: 1, connections: 3 },
          "10.1.1.3:80": { up: true, weight: 0, connections: 3 },
        },
      },
    });
  });
});
