// Reloads and restarts that never misroute a connection (issue 10), with `nflb run` in a lab router
// and real long-lived TCP connections through every uplink: a reload that adds an uplink first in
// the YAML, one that removes another uplink, one that changes only weights (watched with
// `nft monitor`), and a restart with the YAML reordered. Every uplink keeps its mark; only the
// removed uplink's connections are flushed; a sticky choice made before the weight-only reload is
// honoured after it. Needs root.
import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import type { TrackedProcess } from "../../src/lab/processes.ts";
import {
  DaemonFixture,
  NFLB,
  allUp,
  sleep,
  uplinksConfig,
  waitStatus,
  type UplinkYaml,
} from "../../testkit/daemon-harness.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

// COUNT long-lived connections from one process: each reads the server's greeting (the source
// address it saw, i.e. which uplink's NAT carried it), then sends a line every 250 ms and expects
// it echoed within 2 s. Prints {"ev":"up"} per greeting, {"ev":"fail"} at a connection's first
// failure (it stops then), and one {"ev":"sum"} per connection on SIGTERM.
const HOLD = `
import { connect } from "node:net";
const [host, port, count] = process.argv.slice(1).map((x, i) => (i ? Number(x) : x));
const conns = [];
const out = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
for (let id = 0; id < count; id++) {
  const c = { id, src: null, ok: 0, fail: null, pending: new Map(), seq: 0, buf: "" };
  conns.push(c);
  const s = connect({ host, port });
  c.sock = s;
  s.setEncoding("utf8");
  const fail = (why) => {
    if (c.fail) return;
    c.fail = why;
    for (const t of c.pending.values()) clearTimeout(t);
    clearInterval(c.tick);
    out({ ev: "fail", id, src: c.src, why, t: Date.now() });
    s.destroy();
  };
  s.on("data", (d) => {
    c.buf += d;
    let nl;
    while ((nl = c.buf.indexOf("\\n")) >= 0) {
      const line = c.buf.slice(0, nl);
      c.buf = c.buf.slice(nl + 1);
      if (c.src === null) {
        c.src = line;
        out({ ev: "up", id, src: line });
        c.tick = setInterval(() => {
          const n = ++c.seq;
          c.pending.set(n, setTimeout(() => fail("seq " + n + ": no echo within 2 s"), 2000));
          s.write("seq " + n + "\\n");
        }, 250);
        continue;
      }
      const n = Number(/^seq (\\d+)$/.exec(line)?.[1]);
      const t = c.pending.get(n);
      if (t) { clearTimeout(t); c.pending.delete(n); c.ok++; }
    }
  });
  s.on("error", (e) => fail("socket " + (e.code ?? e.message)));
  s.on("close", () => fail("closed"));
}
process.on("SIGTERM", () => {
  for (const c of conns) out({ ev: "sum", id: c.id, src: c.src, ok: c.ok, fail: c.fail });
  process.exit(0);
});
setTimeout(() => process.emit("SIGTERM"), 240000);
`;

interface HoldEvent {
  ev: "up" | "fail" | "sum";
  id: number;
  src: string | null;
  why?: string;
  ok?: number;
  fail?: string | null;
}

class Held {
  constructor(
    readonly proc: TrackedProcess,
    readonly count: number,
  ) {}
  events(): HoldEvent[] {
    return this.proc
      .stdout()
      .split("\n")
      .flatMap((l) => {
        try {
          return l.startsWith("{") ? [JSON.parse(l) as HoldEvent] : [];
        } catch {
          return [];
        }
      });
  }
  /** Greeting (source address) per connection id. */
  sources(): Map<number, string> {
    return new Map(this.events().flatMap((e) => (e.ev === "up" && e.src ? [[e.id, e.src] as const] : [])));
  }
  failed(): HoldEvent[] {
    return this.events().filter((e) => e.ev === "fail");
  }
  async ready(): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (this.sources().size + this.failed().length < this.count && Date.now() < deadline) await sleep(100);
    assert.equal(this.sources().size, this.count, `every held connection greeted: ${this.proc.stdout()}`);
  }
}

describe("reload safety: stable uplink identity (3 uplinks)", { skip, timeout: 360_000 }, () => {
  const lab = new UplinkLab({ uplinks: 3 });
  const holds: Held[] = [];
  const target = () => lab.addr.targets4[1] ?? "";
  const via = (n: number) => `inet ${lab.uplink(n).router4}`;

  /** The lab's uplinks `order` (by number) in that YAML order, fast probes, one sticky rule. */
  const yaml = (order: number[], weights: Record<number, number> = {}) => {
    const probe = `targets: [${lab.addr.targets4.join(", ")}], interval: 200ms, up_after: 3`;
    const uplinks: Record<string, UplinkYaml> = {};
    for (const i of order) {
      const u = lab.uplink(i);
      uplinks[`isp${i}`] = { interface: u.wanIf, gateway: u.gateway4, weight: weights[i] ?? 1, probe };
    }
    // The primary (the router's own default route) by name too, so a reordered YAML changes nothing.
    const primary = [...order].sort().map((i) => `isp${i}`);
    return uplinksConfig(uplinks, [
      `balance: { from: [lan0], method: random, primary: [${primary.join(", ")}] }`,
      "rules:",
      `  - { name: sticky, destination: [${target()}/32], sticky: 30m }`,
    ]);
  };
  const fx = new DaemonFixture(lab, () => yaml([1, 2]), {
    ready: { ok: allUp, timeoutMs: 20_000, what: "isp1 and isp2 up" },
  });

  const reload = async (text: string) => {
    await fx.write(text);
    const r = await lab.exec("router", [NFLB, "reload", "-c", fx.file], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `nflb reload: ${r.stdout}${r.stderr}`);
  };

  const hold = async (count: number) => {
    const proc = lab.spawn("lan", [
      process.execPath,
      "--input-type=module",
      "-e",
      HOLD,
      lab.addr.server4,
      String(lab.ports.echo),
      String(count),
    ]);
    const h = new Held(proc, count);
    holds.push(h);
    await h.ready();
    return h;
  };

  /** ct mark → uplink, as the kernel's restore map has it. */
  const kernelMarks = async () => {
    const r = await lab.exec("router", ["nft", "list", "map", "inet", "nflb", "restore_mark"]);
    assert.equal(r.code, 0, r.stderr);
    return Object.fromEntries(
      [...r.stdout.matchAll(/0x0*([0-9a-f]+) : goto up_(\w+)_mark/g)].map((m) => [m[2], m[1]]),
    );
  };
  const stateSlots = async () => {
    const f = (await readdir(fx.dir)).find((n) => /^netns-\d+\.json$/.test(n));
    assert.ok(f, "the daemon wrote its state file");
    return (JSON.parse(await readFile(join(fx.dir, f), "utf8")) as { uplinkSlots?: unknown }).uplinkSlots;
  };
  const marksHeld = async (mark: string) => {
    const r = await lab.exec("router", ["conntrack", "-L", "-m", `${mark}/0xff00`]);
    return r.stdout.split("\n").filter((l) => l.includes("dport="));
  };
  /** Held connections that failed, by uplink (its greeting), among those greeted through `on`. */
  const brokenOn = (on: string[]) =>
    holds.flatMap((h) => h.failed().filter((e) => e.src !== null && on.includes(e.src)));
  const onUplink = (src: string) =>
    holds.flatMap((h) => [...h.sources().values()].filter((s) => s === src)).length;

  before(() => fx.up(), { timeout: 120_000 });
  // The held connections' processes are the lab's: destroy() stops them by pid.
  after(() => fx.down(), { timeout: 60_000 });

  test(
    "add first, remove, weights only, restart reordered: surviving connections never break; marks follow names",
    { timeout: 300_000 },
    async () => {
      assert.deepEqual(await kernelMarks(), { isp1: "100", isp2: "200" });
      await hold(12);
      assert.ok(onUplink(via(1)) > 0 && onUplink(via(2)) > 0, "held connections on isp1 and isp2");

      // (1) isp3 added FIRST in the YAML: isp1 and isp2 keep their marks; isp3 takes the next.
      await reload(yaml([3, 1, 2]));
      await waitStatus(lab, (s) => s.uplinks.length === 3 && allUp(s), 20_000, "isp3 up");
      assert.deepEqual(await kernelMarks(), { isp3: "300", isp1: "100", isp2: "200" });
      assert.deepEqual(await stateSlots(), { isp3: 3, isp1: 1, isp2: 2 });
      await hold(18);
      assert.ok(onUplink(via(3)) > 0, "held connections on isp3 too");
      await sleep(1500);
      assert.deepEqual(brokenOn([via(1), via(2), via(3)]), [], "no held connection broke on reload 1");

      // (2) isp2 removed: its connections (mark 0x200), and only those, are flushed.
      const onIsp2 = onUplink(via(2));
      await reload(yaml([3, 1]));
      const left = await marksHeld("0x200");
      const said = fx.daemon?.logs().filter((l) => /forgot|could not|failed|applied/.test(String(l.msg)));
      assert.deepEqual(left, [], `no conntrack entry keeps isp2's mark; daemon: ${JSON.stringify(said)}`);
      await sleep(3000);
      assert.deepEqual(brokenOn([via(1), via(3)]), [], "no held connection on isp1 or isp3 broke");
      assert.equal(brokenOn([via(2)]).length, onIsp2, "every isp2 connection was flushed (and so broke)");
      assert.deepEqual(await kernelMarks(), { isp3: "300", isp1: "100" });

      // (3) A sticky choice, then a reload that changes only weights (watched with nft monitor).
      const first = await tcpLineFromLan(target());
      const chosen = first === via(1) ? 1 : 3;
      assert.ok(first === via(1) || first === via(3), `sticky connection greeted ${first}`);
      const sticky = await lab.exec("router", ["nft", "list", "map", "inet", "nflb", "rule_0_sticky4"]);
      assert.match(
        sticky.stdout,
        new RegExp(`${lab.addr.lan.clients[0]?.v4} \\. ${target().replaceAll(".", "\\.")}`),
      );
      const monitor = lab.spawn("router", ["nft", "monitor"]);
      await sleep(300);
      // The other uplink gets 30 of 31 new connections now.
      await reload(yaml([3, 1], { [chosen]: 1, [chosen === 1 ? 3 : 1]: 30 }));
      await sleep(300);
      await monitor.stop(1000);
      const events = monitor.stdout();
      assert.match(events, /add element inet nflb split/, `element updates:\n${events}`);
      assert.doesNotMatch(
        events,
        /delete table|add chain|add rule inet nflb \w+ ct mark/,
        `no table replace:\n${events}`,
      );
      for (let k = 0; k < 6; k++)
        assert.equal(
          await tcpLineFromLan(target()),
          via(chosen),
          "the sticky choice is honoured after the reload",
        );
      await sleep(1000);
      assert.deepEqual(brokenOn([via(1), via(3)]), [], "no held connection broke on the weight-only reload");

      // (4) Restart with the YAML reordered: the state file keeps the marks; held connections live on.
      await fx.stop();
      await fx.write(yaml([1, 3]));
      await fx.start({ ok: allUp, timeoutMs: 20_000, what: "isp1 and isp3 up after the restart" });
      assert.deepEqual(await kernelMarks(), { isp1: "100", isp3: "300" });
      assert.equal(await tcpLineFromLan(target()), via(chosen), "the sticky choice survives the restart");
      await sleep(1500);
      assert.deepEqual(brokenOn([via(1), via(3)]), [], "no held connection broke on the restart");
      const alive = holds.flatMap((h) =>
        [...h.sources().entries()].filter(([id]) => !h.failed().some((f) => f.id === id)),
      );
      assert.equal(
        alive.length,
        onUplink(via(1)) + onUplink(via(3)),
        "every isp1 and isp3 connection is alive",
      );
    },
  );

  const cli = (args: string[]) =>
    lab.exec("router", [NFLB, ...args], {
      timeoutMs: 60_000,
      env: { ...process.env, NFLB_STATE_DIR: fx.dir },
    });

  test(
    "nflb apply and plan --diff use the recorded slots: a reordered YAML changes nothing, a new name takes a free slot; down removes it all",
    { timeout: 120_000 },
    async () => {
      // The daemon of the first test is stopped; its data plane (isp1, isp3) and state file stay.
      await fx.stop();
      await fx.write(yaml([3, 1]));
      const same = await cli(["plan", "--diff", "-c", fx.file]);
      assert.equal(same.code, 0, same.stderr);
      assert.match(same.stdout, /nothing to change/, same.stdout);
      const applied = await cli(["apply", "-c", fx.file]);
      assert.equal(applied.code, 0, applied.stderr);
      assert.deepEqual(await kernelMarks(), { isp1: "100", isp3: "300" });
      // isp2 comes back first in the YAML: its old slot is free again (its connections were flushed).
      await fx.write(yaml([2, 3, 1]));
      const again = await cli(["apply", "-c", fx.file]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await kernelMarks(), { isp2: "200", isp3: "300", isp1: "100" });
      assert.deepEqual(await stateSlots(), { isp2: 2, isp3: 3, isp1: 1 });
      await sleep(1000);
      assert.deepEqual(brokenOn([via(1), via(3)]), [], "no held connection broke on apply");
      const down = await cli(["down"]);
      assert.equal(down.code, 0, down.stderr);
      const rules = await lab.exec("router", ["ip", "-N", "rule"]);
      assert.doesNotMatch(rules.stdout, /proto 110/, "no nflb rule left");
      assert.equal((await lab.exec("router", ["nft", "list", "table", "inet", "nflb"])).code, 1, "no table");
      assert.equal(
        (await readdir(fx.dir)).find((n) => /^netns-\d+\.json$/.test(n)),
        undefined,
        "state file removed",
      );
    },
  );

  async function tcpLineFromLan(dst: string): Promise<string> {
    const r = await lab.exec(
      "lan",
      [
        process.execPath,
        "--input-type=module",
        "-e",
        `import { connect } from "node:net";
const s = connect({ host: process.argv[1], port: Number(process.argv[2]) });
s.setEncoding("utf8"); let b = "";
const t = setTimeout(() => { console.log("timeout"); process.exit(1); }, 3000);
s.on("data", (d) => { b += d; const i = b.indexOf("\\n"); if (i >= 0) { clearTimeout(t); console.log(b.slice(0, i)); s.destroy(); } });
s.on("error", (e) => { console.log("error " + e.code); process.exit(1); });`,
        dst,
        String(lab.ports.echo),
      ],
      { timeoutMs: 10_000 },
    );
    return r.stdout.trim();
  }
});
