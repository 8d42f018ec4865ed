// Issue 2, "what it must show" 6 and 7: nflb owns only its table, rules, routes and sysctls;
// bad input changes nothing.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import { ConfigDir, nflb, nflbOk, snapshot } from "./support/nflb.ts";

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
          await lab.run("router", ["sysctl", "-n", "net.ipv4.conf.wan1.rp_filter", "net.ipv4.ip_forward"])
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
      ["negative weight", base + "    weight: -2\n", /uplinks\.isp1\.weight \(line 6, column 13\):.*>=0/],
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
      [
        "nonexistent interface",
        base.replace("wan1", "wan9"),
        /uplinks\.isp1\.interface \(line 4, column 16\): no interface wan9 on this host/,
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
});
