// Issue 14: with no API token, the dashboard nflb serves may act (it echoes the per-start CSRF
// secret embedded in the page); a page from another origin, and a page that took over a name by
// DNS rebinding, may not — in a real browser (headless Chromium), against the real HTTP API.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { buildApi, type ActionResult, type ApiDaemon } from "../../src/api/server.ts";
import { EventLog } from "../../src/daemon/events.ts";
import type { StatusJson } from "../../src/daemon/status.ts";
import { browserUnavailableReason, launchBrowser, type Browser } from "./support/browser.ts";

const unavailable = await browserUnavailableReason();
const skip = unavailable ? `browser tests skipped: ${unavailable}` : false;

function fakeDaemon() {
  const calls: string[] = [];
  const uplink = (name: string): StatusJson["uplinks"][number] => ({
    name,
    interface: `wan${name.slice(-1)}`,
    state: "up",
    reason: "",
    since: null,
    weight: 1,
    effective_weight: 1,
    share: 0.5,
    rtt_ms: 3,
    jitter_ms: 0.1,
    loss: 0,
    connections: 1,
    probed: true,
  });
  const status: StatusJson = {
    uplinks: [uplink("isp1"), uplink("isp2")],
    services: [],
    cluster: null,
    applied_at: new Date().toISOString(),
    config_version: "0123456789ab",
    config_file: "/etc/nflb/nflb.yaml",
    started_at: new Date().toISOString(),
    last_reload_error: null,
    keeping_last_data_plane: false,
  };
  const d: ApiDaemon = {
    status: async () => structuredClone(status),
    setUplinkEnabled: async (name, enabled): Promise<ActionResult> => {
      calls.push(`${name} ${enabled ? "enable" : "disable"}`);
      const u = status.uplinks.find((x) => x.name === name);
      if (!u) return { ok: false, status: 404, error: `no uplink ${name}` };
      u.state = enabled ? "up" : "disabled";
      return { ok: true, body: { uplink: name, state: u.state } };
    },
    setBackendDrained: async (): Promise<ActionResult> => ({ ok: false, status: 404, error: "none" }),
    token: () => null,
    events: new EventLog(),
    metrics: async () => ({ contentType: "text/plain", body: "" }),
  };
  return { d, calls };
}

/** What an attacker's page tries: read the dashboard for its secret, then POST with it. */
const ATTACK_SCRIPT = (api: string) => `
  window.results = (async () => {
    const out = {};
    try {
      const page = await fetch("${api}/");
      out.page = page.status;
      const m = /name="nflb-csrf" content="([^"]*)"/.exec(await page.text());
      out.secret = m ? m[1] : null;
    } catch (e) { out.page = "blocked: " + e.message; }
    try {
      const r = await fetch("${api}/api/v1/uplinks/isp2/disable", {
        method: "POST", headers: out.secret ? { "x-nflb-csrf": out.secret } : {},
      });
      out.post = r.status;
    } catch (e) { out.post = "blocked: " + e.message; }
    try {
      await fetch("${api}/api/v1/uplinks/isp2/disable", { method: "POST", mode: "no-cors" });
      out.noCors = "sent";
    } catch (e) { out.noCors = "blocked: " + e.message; }
    return out;
  })();`;
const ATTACK = (api: string) => `<!doctype html><title>cats</title><script>${ATTACK_SCRIPT(api)}</script>`;

describe(
  "the dashboard's CSRF secret and the Host check, in headless Chromium",
  { skip, timeout: 180_000 },
  () => {
    const fake = fakeDaemon();
    const app = buildApi(fake.d, { heartbeatMs: 1000 });
    let port = 0;
    let browser: Browser | undefined;
    let evil: Server | undefined;
    let evilPort = 0;

    before(
      async () => {
        await app.listen({ host: "127.0.0.1", port: 0 });
        port = (app.server.address() as AddressInfo).port;
        evil = createServer((_req, res) => {
          res.writeHead(200, { "content-type": "text/html" });
          res.end(ATTACK(`http://127.0.0.1:${port}`));
        });
        await new Promise<void>((r) => evil?.listen(0, "127.0.0.1", r));
        evilPort = (evil.address() as AddressInfo).port;
        // rebind.example "now resolves" to this machine, as after a DNS rebinding.
        browser = await launchBrowser(undefined, ["--host-resolver-rules=MAP rebind.example 127.0.0.1"]);
      },
      { timeout: 90_000 },
    );

    after(async () => {
      await browser?.close();
      await app.close();
      await new Promise((r) => evil?.close(r));
    });

    const page = () => {
      if (!browser) throw new Error("no browser");
      return browser.page;
    };

    test("the page nflb served may disable an uplink without a token", async () => {
      const p = page();
      await p.goto(`http://127.0.0.1:${port}/`);
      await p.evaluate(() => ((window as unknown as { nflbNoReload: boolean }).nflbNoReload = true));
      await p.locator('[data-uplink="isp1"] button.toggle').click();
      await p.waitForSelector('[data-uplink="isp1"][data-state="disabled"]', { timeout: 5000 });
      assert.deepEqual(fake.calls, ["isp1 disable"]);
    });

    test("a page on another origin cannot read the secret nor act", async () => {
      const p = page();
      await p.goto(`http://127.0.0.1:${evilPort}/`);
      const r = (await p.evaluate("window.results")) as Record<string, unknown>;
      assert.match(String(r.page), /^blocked/, "no CORS: the page's text stays unread");
      assert.equal(r.secret, undefined);
      assert.match(String(r.post), /^blocked/);
      assert.deepEqual(fake.calls, ["isp1 disable"], `nothing reached the daemon: ${JSON.stringify(r)}`);
    });

    test("a page that rebound its name to 127.0.0.1 cannot read the secret nor act", async () => {
      const p = page();
      // The attacker's page was served under rebind.example:PORT before the rebinding; now the name
      // leads to the daemon, and the page's scripts run in that origin. (Loading the daemon's own
      // answer there puts the script in that origin without Chromium's private-network checks,
      // which not every browser has, stopping it first.)
      const origin = `http://rebind.example:${port}`;
      const doc = await p.goto(`${origin}/`);
      assert.equal(doc?.status(), 403, "the dashboard is not served under a foreign name");
      await p.evaluate(ATTACK_SCRIPT(origin));
      const r = (await p.evaluate("window.results")) as Record<string, unknown>;
      assert.equal(r.page, 403, JSON.stringify(r));
      assert.equal(r.secret, null);
      assert.equal(r.post, 403);
      assert.deepEqual(fake.calls, ["isp1 disable"], `nothing reached the daemon: ${JSON.stringify(r)}`);
    });
  },
);
