// `nflb backend drain|maint|enable|weight` against `nflb run` balancing a VIP over two real
// backends, with real conntrack: status counts the connections a backend holds now; drain --wait
// returns once the last one closes; maint stops the checks (a dead backend stays "maint", not
// "down") and is kept across a daemon restart; enable restarts them. Needs root.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { StatusJson } from "../../src/daemon/status.ts";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { spawnTracked } from "../../src/lab/processes.ts";
import { SERVICE_LAB as L, ServiceLab, backendAddress } from "../../src/lab/service-lab.ts";
import { groupOf } from "../../src/plan/nft-groups.ts";
import { groupSlotsMap } from "../../src/nft/names.ts";
import { DaemonFixture } from "../../testkit/daemon-harness.ts";
import { until } from "../../testkit/until.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;
const b1 = `${backendAddress(1).v4}:80`;
const b2 = `${backendAddress(2).v4}:80`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe(
  "nflb backend verbs against a running daemon (1 VIP, 2 backends)",
  { skip, timeout: 300_000 },
  () => {
    const lab = new ServiceLab({ backends: 2 });
    const config = () => `version: 1
services:
  web:
    listen: ${L.vip4}:80
    scheduler: round-robin
    check: { method: tcp, interval: 200ms, timeout: 150ms, rise: 2, fall: 2 }
    backends:
      - { address: ${b1} }
      - { address: ${b2} }
`;
    // The balancer's daemon, no API (the CLI finds it by its state directory), both backends up.
    const fx = new DaemonFixture(lab, config, {
      role: "lb",
      api: null,
      ready: null,
      prepare: async () => {
        await lab.startBackend(1);
        await lab.startBackend(2);
      },
    });
    const cli = (args: string[], timeoutMs = 60_000) => fx.cli([...args, "-c", fx.file], timeoutMs);

    async function status(): Promise<StatusJson> {
      const r = await cli(["status", "--json"]);
      return JSON.parse(r.stdout) as StatusJson;
    }
    const backend = async (address: string) => {
      const b = (await status()).services[0]?.backends.find((x) => x.address === address);
      assert.ok(b, address);
      return b;
    };
    /** 12 new connections from the client: which backends answered. */
    async function spread(): Promise<Record<string, number>> {
      const r = await lab.runClient({
        from: "client",
        dst: L.vip4,
        port: 80,
        count: 12,
        parallel: 4,
        timeoutMs: 1000,
        deadlineMs: 15_000,
      });
      assert.equal(r.failed, 0, r.errors.join("; "));
      const out: Record<string, number> = {};
      for (const [line, n] of Object.entries(r.bySeen)) {
        const name = line.split(" ")[0] ?? "";
        out[name] = (out[name] ?? 0) + n;
      }
      return out;
    }
    before(() => fx.up(), { timeout: 90_000 });
    after(() => fx.down(), { timeout: 60_000 });

    test(
      "a drain is an element update of its service, never a table, chain or set replace (nft monitor)",
      { timeout: 60_000 },
      async () => {
        const monitor = spawnTracked(["nft", "monitor"], { netns: lab.netns("lb") });
        try {
          await sleep(300);
          const d = await cli(["backend", "drain", "web", b1]);
          assert.equal(d.code, 0, d.stderr);
          assert.deepEqual(await spread(), { b2: 12 }, "no new connection to a drained backend");
          await sleep(300);
        } finally {
          await monitor.stop();
        }
        const events = monitor.stdout().split("\n").filter(Boolean);
        const nflb = events.filter((l) => / inet nflb /.test(l));
        const all = nflb.join("\n");
        // Seen on nft 1.0.6: the dispatch rule's modulus (delete + add rule in svc_web), the slot
        // map declared again (a no-op `add map`) and its new elements; the flush prints nothing.
        // web's slots live in its group's map (src/plan/nft-groups.ts), keyed VIP . port . slot.
        const slots = groupSlotsMap(4, "tcp", groupOf("web"));
        assert.ok(
          nflb.some((l) => l.startsWith(`add element inet nflb ${slots} `)),
          `the drain reached the kernel as slot-map elements:\n${events.join("\n")}`,
        );
        // Nothing deleted or created anew; a map the diff declares again to add its elements is
        // a no-op the kernel still reports as `add map`, so only the service's own may show.
        const replaced = nflb.filter(
          (l) =>
            /^delete (table|chain|set|map|flowtable) /.test(l) || /^add (table|chain|flowtable) /.test(l),
        );
        assert.deepEqual(replaced, [], `no table, chain, set or map was deleted or created:\n${all}`);
        const touched = new Set(
          nflb.flatMap((l) => /^(?:add|delete) (?:set|map|element|rule) inet nflb (\S+)/.exec(l)?.[1] ?? []),
        );
        assert.ok(
          [...touched].every((name) => name === "svc_web" || name.startsWith("svc_web_") || name === slots),
          `only the service's objects changed (${[...touched].join(", ")}):\n${all}`,
        );
        assert.ok(
          nflb.every((l) => /^(add|delete) (set|map|element|rule) /.test(l)),
          `only elements and rules:\n${all}`,
        );

        const en = await cli(["backend", "enable", "web", b1]);
        assert.equal(en.code, 0, en.stderr);
        assert.deepEqual(await spread(), { b1: 6, b2: 6 });
      },
    );

    test(
      "status counts what each backend holds now; drain --wait returns when the last one closes",
      { timeout: 90_000 },
      async () => {
        const held = lab.startConnections("client", { dst: L.vip4, port: 80, count: 4, durationMs: 60_000 });
        const greetings = await held.opened();
        assert.equal(greetings.filter((g) => g.startsWith("b1 ")).length, 2, greetings.join(", "));
        await until("2 connections on b1", async () => (await backend(b1)).connections === 2, 5000, 200);
        const before = await backend(b1);
        assert.ok((before.connections_total ?? 0) >= 2, `connections_total ${before.connections_total}`);

        const t0 = Date.now();
        const draining = cli(["backend", "drain", "web", b1, "--wait", "--timeout", "30s", "--json"]);
        await until("b1 draining", async () => (await backend(b1)).state === "draining", 10_000, 200);
        assert.deepEqual(await spread(), { b2: 12 }, "no new connection to a drained backend");
        assert.equal((await backend(b1)).connections, 2, "established connections stay");
        await sleep(1000);
        await held.stop();
        const closedAt = Date.now();
        const r = await draining;
        assert.equal(r.code, 0, r.stderr);
        assert.ok(
          Date.now() >= closedAt && closedAt - t0 >= 1000,
          "returned only after the connections closed",
        );
        const doc = JSON.parse(r.stdout) as { backend_status: { connections: number; state: string } };
        assert.deepEqual([doc.backend_status.connections, doc.backend_status.state], [0, "draining"]);

        const en = await cli(["backend", "enable", "web", b1]);
        assert.equal(en.code, 0, en.stderr);
        assert.deepEqual(await spread(), { b1: 6, b2: 6 });
      },
    );

    test(
      "maint stops the checks and survives a restart; enable starts them again; weight at run time",
      { timeout: 120_000 },
      async () => {
        const m = await cli(["backend", "maint", "web", b2]);
        assert.equal(m.code, 0, m.stderr);
        assert.deepEqual(await spread(), { b1: 12 });
        // A backend in maint is not checked: stopping its server does not make it "down".
        await lab.stopBackend(2);
        await sleep(1500);
        const inMaint = await backend(b2);
        assert.equal(inMaint.state, "maint", inMaint.reason);
        assert.equal((await cli(["status"])).code, 1, "a backend in maint: degraded");

        await fx.start();
        assert.equal((await backend(b2)).state, "maint", "kept across a restart");
        assert.deepEqual(await spread(), { b1: 12 });

        // enable: checks again, and the dead server is found down.
        assert.equal((await cli(["backend", "enable", "web", b2])).code, 0);
        await until("b2 down", async () => (await backend(b2)).state === "down", 10_000, 200);
        await lab.startBackend(2);
        await until("b2 up", async () => (await backend(b2)).state === "up", 10_000, 200);
        assert.equal((await cli(["status"])).code, 0);

        const w = await cli(["backend", "weight", "web", b2, "3", "--json"]);
        assert.equal(w.code, 0, w.stderr);
        const b = await backend(b2);
        assert.deepEqual([b.weight, b.configured_weight], [3, 1]);
        assert.deepEqual(await spread(), { b1: 3, b2: 9 });
      },
    );
  },
);
