// Issue 2: replies to connections that arrived on an uplink leave by that uplink — for the
// router's own services and for port-forwards to LAN hosts — although the primary is another link.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import { ConfigDir, nflbOk } from "./support/nflb.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

// The admin's own port-forward, in their own table: nflb must make its replies leave by wan2.
const PORT_FORWARD = (lanHost: string) => `table ip userfw {
  chain portfwd {
    type nat hook prerouting priority dstnat; policy accept;
    tcp dport 8080 dnat to ${lanHost}:7000
  }
}
`;

describe("uplinks: inbound connections are answered by their uplink", { skip, timeout: 120_000 }, () => {
  const lab = new UplinkLab({ uplinks: 2 });
  const cfg = new ConfigDir();

  before(
    async () => {
      await lab.build();
      await lab.startEchoServer({
        role: "router",
        name: "router",
        tcp: [{ address: "0.0.0.0", port: 7000 }],
      });
      await lab.startEchoServer({ role: "lan", name: "lanhost", tcp: [{ address: "0.0.0.0", port: 7000 }] });
      await lab.run("router", ["nft", "-f", "-"], { input: PORT_FORWARD(lab.addr.lan.clients[0]?.v4 ?? "") });
      const file = cfg.write(`version: 1
uplinks:
  isp1: { interface: wan1, gateway: ${lab.uplink(1).gateway4} }
  isp2: { interface: wan2, gateway: ${lab.uplink(2).gateway4} }
balance: { primary: [isp1, isp2] }
`);
      await nflbOk(lab, "router", ["apply", "-c", file]);
    },
    { timeout: 60_000 },
  );
  after(async () => {
    await lab.destroy();
    cfg.cleanup();
  });

  for (const [what, port, name] of [
    ["a service on the router", 7000, "router"],
    ["a port-forward to a LAN host", 8080, "lanhost"],
  ] as const) {
    test(`${what}, reached through isp2, answers through isp2`, { timeout: 30_000 }, async () => {
      await lab.resetIspCounters(1);
      const r = await lab.runClient({
        from: "inet",
        dst: lab.uplink(2).router4,
        port,
        count: 20,
        parallel: 4,
        timeoutMs: 2000,
        deadlineMs: 20_000,
      });
      assert.equal(r.ok, 20, `replies lost: ${r.errors.join("; ")}`);
      assert.deepEqual(
        Object.keys(r.bySeen).map((l) => l.split(" ")[0]),
        [name],
      );
      const isp1 = await lab.ispCounters(1);
      assert.equal(isp1.foreignDropped, 0, "no reply tried to leave through isp1");
    });
  }
});
