// balance.accept_local (docs/DATAPLANE.md, opt-in): with `balance.from`, nflb sets accept_local=1 there, so
// the kernel skips the full reverse-path lookup of each forwarded packet, and drops in nft what
// that lookup refused: a packet from the LAN whose source is one of the router's own addresses.
// `down` puts the sysctl back.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { UplinkLab } from "../../src/lab/uplink-lab.ts";
import { INTERNET } from "../../src/lab/addressing.ts";
import { ConfigDir, nflbOk } from "./support/nflb.ts";

const unavailable = await labUnavailableReason();
const skip = unavailable ? `lab tests skipped: ${unavailable}` : false;

const SPOOF_PORT = 9999;
const CLIENT_PORT = 9998;
const PACKETS = 5;

describe(
  "uplinks: accept_local on balance.from, local sources dropped by nflb",
  { skip, timeout: 180_000 },
  () => {
    const lab = new UplinkLab({ uplinks: 1 });
    const cfg = new ConfigDir();
    const wan = lab.uplinks[0];
    assert.ok(wan);

    /** Datagrams that reached the internet namespace from the router's WAN address, by port. */
    const seen = async (): Promise<Record<number, number>> => {
      const text = await lab.run("inet", ["nft", "list", "table", "inet", "labseen"]);
      const count = (port: number) =>
        Number(new RegExp(`udp dport ${port} counter packets (\\d+)`).exec(text)?.[1] ?? "NaN");
      return { [SPOOF_PORT]: count(SPOOF_PORT), [CLIENT_PORT]: count(CLIENT_PORT) };
    };
    /** PACKETS datagrams from the LAN client, from `from` to the internet server's `port`. */
    const send = (from: string, port: number) =>
      lab.run("lan", [
        process.execPath,
        "-e",
        `const s = require("node:dgram").createSocket("udp4");
       s.bind({ address: ${JSON.stringify(from)}, port: 0 }, async () => {
         for (let i = 0; i < ${PACKETS}; i++)
           await new Promise((r) => s.send("x", ${port}, ${JSON.stringify(INTERNET.server4)}, r));
         s.close();
       });`,
      ]);
    const acceptLocal = async () =>
      (await lab.run("router", ["sysctl", "-n", "net.ipv4.conf.lan0.accept_local"])).trim();

    before(
      async () => {
        await lab.build();
        // The LAN client may send from the router's WAN address (a spoofer), and the internet side
        // counts what arrives from that address: masqueraded traffic (the control) and spoofed.
        await lab.run("lan", ["ip", "addr", "add", `${wan.router4}/32`, "dev", "eth0"]);
        await lab.run("inet", ["nft", "-f", "-"], {
          input: `table inet labseen {
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    ip saddr ${wan.router4} udp dport ${SPOOF_PORT} counter
    ip saddr ${wan.router4} udp dport ${CLIENT_PORT} counter
  }
}
`,
        });
        await lab.settle();
      },
      { timeout: 90_000 },
    );
    after(async () => {
      await lab.destroy();
      cfg.cleanup();
    });

    test(
      "apply sets it, the spoofed packets stop at nflb's rule, down puts it back",
      { timeout: 60_000 },
      async () => {
        const was = await acceptLocal();
        const file = cfg.write(`version: 1
uplinks:
  isp1: { interface: ${wan.wanIf}, gateway: ${wan.gateway4} }
balance: { from: [lan0], accept_local: true }
`);
        await nflbOk(lab, "router", ["apply", "-c", file]);
        assert.equal(await acceptLocal(), "1");

        await send(lab.addr.lan.clients[0]?.v4 ?? "", CLIENT_PORT);
        await send(wan.router4, SPOOF_PORT);
        assert.deepEqual(
          await seen(),
          { [CLIENT_PORT]: PACKETS, [SPOOF_PORT]: 0 },
          "masqueraded yes, spoofed no",
        );

        // The rule is what stops them: without it the kernel, told to accept local sources, forwards them.
        const listing = await lab.run("router", ["nft", "-a", "list", "chain", "inet", "nflb", "prerouting"]);
        const handle = /fib saddr type local drop # handle (\d+)/.exec(listing)?.[1];
        assert.ok(handle, "the local-source rule is in prerouting");
        await lab.run("router", ["nft", "delete", "rule", "inet", "nflb", "prerouting", "handle", handle]);
        await send(wan.router4, SPOOF_PORT);
        assert.equal((await seen())[SPOOF_PORT], PACKETS, "without the rule they get through");

        await nflbOk(lab, "router", ["down"]);
        assert.equal(await acceptLocal(), was);
      },
    );

    test(
      "balance.accept_local: false (the default) leaves the sysctl and adds no rule",
      { timeout: 60_000 },
      async () => {
        const was = await acceptLocal();
        const file = cfg.write(`version: 1
uplinks:
  isp1: { interface: ${wan.wanIf}, gateway: ${wan.gateway4} }
balance: { from: [lan0] }
`);
        await nflbOk(lab, "router", ["apply", "-c", file]);
        assert.equal(await acceptLocal(), was);
        assert.doesNotMatch(await lab.run("router", ["nft", "list", "table", "inet", "nflb"]), /fib saddr/);
        await nflbOk(lab, "router", ["down"]);
      },
    );
  },
);
