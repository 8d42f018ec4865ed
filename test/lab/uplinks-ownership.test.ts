// Issue 2, "what it must show" 6 and 7: nflb owns only its table, rules, routes and sysctls;
// bad input changes nothing. Issue 14: `down` without a state file removes only what carries
// nflb's routing protocol number, never another tool's rules and routes inside nflb's ranges.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigDir, NFLB, nflb, nflbOk, snapshot } from "./support/nflb.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

const USER_TABLE = `table inet userfw {
  chain input {
    type filter hook input priority filter; policy accept;
    tcp dport 22 counter accept
  }
}
`;

describe("uplinks: ownership and bad input", { skip, timeout: 180_000 }, () => {
  const lab = new UplinkLab({ uplinks: 2, v6: true });
  const cfg = new ConfigDir();

  before(
    async () => {
      await lab.build();
      // What an admin had before nflb: a firewall table and a policy rule of their own (v4 and v6).
      await lab.run("router", ["nft", "-f", "-"], { input: USER_TABLE });
      await lab.run("router", [
        "ip",
        "-4",
        "rule",
        "add",
        "priority",
        "500",
        "from",
        "198.51.100.0/24",
        "lookup",
        "main",
      ]);
      await lab.run("router", [
        "ip",
        "-6",
        "rule",
        "add",
        "priority",
        "500",
        "from",
        "2001:db8:99::/48",
        "lookup",
        "main",
      ]);
      // Another tool's policy routing inside nflb's default ranges (strongSwan installs table 220 at
      // priority 220; here at 10500, among nflb's own priorities), and a route in one of nflb's tables.
      for (const argv of [
        ["ip", "-4", "rule", "add", "priority", "10500", "table", "220"],
        ["ip", "-6", "rule", "add", "priority", "10500", "table", "220"],
        ["ip", "-4", "route", "add", "198.18.220.0/24", "dev", "wan1", "table", "220"],
        ["ip", "-6", "route", "add", "2001:db8:220::/48", "dev", "wan1", "table", "220"],
        ["ip", "-4", "route", "add", "198.18.201.0/24", "dev", "wan1", "table", "201"],
      ])
        await lab.run("router", argv);
      await lab.run("router", ["sysctl", "-qw", "net.ipv4.conf.wan1.rp_filter=1"]);
      await lab.settle();
    },
    { timeout: 90_000 },
  );
  after(async () => {
    await lab.destroy();
    cfg.cleanup();
  });

  const good = () =>
    cfg.write(`version: 1
uplinks:
${lab.uplinks
  .map(
    (u) => `  isp${u.index}:
    interface: ${u.wanIf}
    gateway: [${u.gateway4}, "${u.gateway6}"]`,
  )
  .join("\n")}
rules:
  - { name: docs, destination: [198.51.100.0/24, "2001:db8:99::/48"], via: [isp2, isp1] }
  - { name: sticky, source: [198.18.0.0/24], sticky: 10m }
`);

  test(
    "apply twice then down restores nft, ip rules, routes and sysctls exactly",
    { timeout: 60_000 },
    async () => {
      const before = await snapshot(lab, "router");
      const rp = async () =>
        (
          await lab.run("router", [
            "sysctl",
            "-n",
            "net.ipv4.conf.wan1.rp_filter",
            "net.ipv4.ip_forward",
            "net.ipv4.conf.wan1.src_valid_mark",
          ])
        ).trim();
      const rpBefore = await rp();
      const file = good();
      await nflbOk(lab, "router", ["apply", "-c", file]);
      const once = await snapshot(lab, "router");
      const second = await nflbOk(lab, "router", ["apply", "-c", file]);
      assert.match(
        second,
        /rules \+0 -0; routes ~0 -0; sysctls unchanged/,
        "re-applying the same config changes nothing",
      );
      const twice = await snapshot(lab, "router");
      assert.deepEqual(twice, once);
      assert.ok(twice.ruleset?.includes("table inet userfw"), "the user's table is still there");
      assert.match(
        twice.ruleset ?? "",
        /table inet userfw \{\n\tchain input \{\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 22 counter packets 0 bytes 0 accept/,
      );
      assert.match(twice.rules4 ?? "", /500:\tfrom 198\.51\.100\.0\/24 lookup main/);
      assert.notEqual(await rp(), rpBefore, "apply changed rp_filter/forwarding");
      assert.equal((await rp()).split("\n")[2], "1", "the reverse-path check uses the packet's mark");
      await nflbOk(lab, "router", ["down"]);
      assert.deepEqual(await snapshot(lab, "router"), before);
      assert.equal(await rp(), rpBefore);
    },
  );

  test("bad configs: exit 2, the YAML path and line, nothing touched", { timeout: 60_000 }, async () => {
    const before = await snapshot(lab, "router");
    const base = `version: 1
uplinks:
  isp1:
    interface: wan1
    gateway: 100.64.1.1
`;
    const cases: [string, string, RegExp][] = [
      [
        "unknown key",
        base + "    colour: blue\n",
        /uplinks\.isp1\.colour \(line 6, column 5\): unknown key colour/,
      ],
      [
        "negative weight",
        base + "    weight: -2\n",
        /uplinks\.isp1\.weight \(line 6, column 13\): must be a whole number from 0 to 10000 \(got -2\)/,
      ],
      [
        "invalid prefix",
        base + "rules:\n  - { name: r, destination: [203.0.113.0/33], via: [isp1] }\n",
        /rules\[0\]\.destination\[0\] \(line 7.*bad prefix length/,
      ],
      [
        "unknown uplink in via",
        base + "rules:\n  - { name: r, destination: [203.0.113.0/24], via: [isp7] }\n",
        /rules\[0\]\.via\[0\] \(line 7.*unknown uplink isp7/,
      ],
    ];
    for (const [what, yaml, want] of cases) {
      const file = cfg.write(yaml);
      for (const verb of ["check", "apply"]) {
        const r = await nflb(lab, "router", [verb, "-c", file]);
        assert.equal(r.code, 2, `${what}: ${verb} exit code`);
        assert.match(r.stderr, want, `${what}: ${verb} message`);
      }
    }
    assert.deepEqual(await snapshot(lab, "router"), before);
  });

  test("a failing apply leaves the previous data plane byte-identical", { timeout: 60_000 }, async () => {
    await nflbOk(lab, "router", ["apply", "-c", good()]);
    const serving = await snapshot(lab, "router");
    // Valid config, but isp2's gateway is not on its link: the kernel refuses the route midway.
    const broken = cfg.write(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: ${lab.uplink(1).gateway4}, weight: 2 }
  isp2: { interface: wan2, gateway: 100.127.0.1 }
`);
    const r = await nflb(lab, "router", ["apply", "-c", broken]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /100\.127\.0\.1/);
    assert.deepEqual(await snapshot(lab, "router"), serving);
    await nflbOk(lab, "router", ["down"]);
  });

  test(
    "plan --diff names a hand-edited map element and a deleted rule; nothing after apply",
    { timeout: 60_000 },
    async () => {
      const file = good();
      await nflbOk(lab, "router", ["apply", "-c", file]);
      const same = JSON.parse(await nflbOk(lab, "router", ["plan", "--diff", "--json", "-c", file])) as {
        same: boolean;
      };
      assert.equal(same.same, true, "right after apply the kernel holds what apply would install");
      // By hand: slot 0 of the split sent to isp2 instead of isp1, and isp2's fwmark rule deleted.
      const split = await lab.run("router", ["nft", "list", "map", "inet", "nflb", "split"]);
      assert.match(split, /\b0(-\d+)? : goto up_isp1_pin/, split);
      await lab.run("router", ["nft", "delete", "element", "inet", "nflb", "split", "{ 0 }"]);
      await lab.run("router", ["nft", "add", "element", "inet", "nflb", "split", "{ 0 : goto up_isp2_pin }"]);
      await lab.run("router", ["ip", "-4", "rule", "del", "priority", "10011"]);
      const text = await nflbOk(lab, "router", ["plan", "--diff", "-c", file]);
      assert.match(
        text,
        /~ map inet nflb split: element 0 : goto up_isp2_pin, wanted : goto up_isp1_pin/,
        text,
      );
      assert.match(text, /ip -4 rule add priority 10011 fwmark 0x200\/0xff00 lookup 202 protocol 110/, text);
      await nflbOk(lab, "router", ["apply", "-c", file]);
      assert.match(await nflbOk(lab, "router", ["plan", "--diff", "-c", file]), /nothing to change/);
      await nflbOk(lab, "router", ["down"]);
    },
  );

  test(
    "down without a state file removes only nflb's tagged rules and routes; other tools' survive",
    { timeout: 60_000 },
    async () => {
      const before = await snapshot(lab, "router");
      assert.match(before.rules4 ?? "", /10500:\tfrom all lookup 220/);
      await nflbOk(lab, "router", ["apply", "-c", good()]);
      const applied = await snapshot(lab, "router");
      assert.match(applied.rules4 ?? "", /lookup 201 proto 110/, "nflb's rules carry its protocol");
      assert.match(applied.routes4 ?? "", /default via \S+ dev wan1 table 201 proto 110/);
      const empty = mkdtempSync(join(tmpdir(), "nflb-nostate-"));
      try {
        const r = await lab.exec("router", [NFLB, "down"], {
          timeoutMs: 30_000,
          env: { ...process.env, NFLB_STATE_DIR: empty },
        });
        assert.equal(r.code, 0, r.stderr);
        assert.doesNotMatch(r.stdout, /table 220|priority 220\b/);
      } finally {
        rmSync(empty, { recursive: true, force: true });
      }
      const after = await snapshot(lab, "router");
      assert.match(after.rules4 ?? "", /10500:\tfrom all lookup 220/);
      assert.match(after.rules6 ?? "", /10500:\tfrom all lookup 220/);
      assert.match(after.routes4 ?? "", /198\.18\.220\.0\/24 dev wan1 table 220/);
      assert.match(after.routes6 ?? "", /2001:db8:220::\/48 dev wan1 table 220/);
      assert.match(after.routes4 ?? "", /198\.18\.201\.0\/24 dev wan1 table 201/);
      // Without a state file the old sysctls are unknown: IPv6 forwarding stays on, and with it the
      // kernel's own anycast routes in the local table. Everything else is exactly as it was.
      const noLocal = (s: Record<string, string>) => ({
        ...s,
        routes6: (s.routes6 ?? "")
          .split("\n")
          .filter((l) => !l.includes(" table local "))
          .join("\n"),
      });
      assert.deepEqual(noLocal(after), noLocal(before), "the host as it was, other tools' objects included");
      // The state file that run left is stale now; a normal down clears it.
      await nflbOk(lab, "router", ["down"]);
    },
  );

  test(
    "local: balance installs a weighted multipath default, tagged, and down removes it",
    { timeout: 60_000 },
    async () => {
      const before = await snapshot(lab, "router");
      const file = cfg.write(`version: 1
uplinks:
${lab.uplinks.map((u) => `  isp${u.index}: { interface: ${u.wanIf}, gateway: ${u.gateway4}, weight: ${u.index + 1} }`).join("\n")}
balance: { local: balance }
`);
      await nflbOk(lab, "router", ["apply", "-c", file]);
      const t200 = await lab.run("router", ["ip", "-4", "route", "show", "table", "200"]);
      assert.match(t200, /^default proto 110 /m);
      assert.match(t200, /nexthop via \S+ dev wan1 weight 2/);
      assert.match(t200, /nexthop via \S+ dev wan2 weight 3/);
      const again = await nflbOk(lab, "router", ["apply", "-c", file]);
      assert.match(again, /rules \+0 -0; routes ~0 -0/, "the multipath route reads back equal");
      await nflbOk(lab, "router", ["down"]);
      const after = await snapshot(lab, "router");
      assert.deepEqual({ ...after, routes6: "" }, { ...before, routes6: "" });
    },
  );
});
