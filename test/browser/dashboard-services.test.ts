// The dashboard's service cards show how a service balances (scheduler, persistence), what its
// check asks, which backends are backups and whether they serve: over the real HTTP API and a
// fake daemon, in headless Chromium.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { buildApi, type ApiDaemon } from "../../src/api/server.ts";
import { EventLog } from "../../src/daemon/events.ts";
import type { BackendStatus, StatusJson } from "../../src/daemon/status.ts";
import {
  browserUnavailableReason,
  collectErrors,
  launchBrowser,
  screenshot,
  type Browser,
} from "./support/browser.ts";

const unavailable = await browserUnavailableReason();
const skip = unavailable ? `browser tests skipped: ${unavailable}` : false;

const backend = (address: string, o: Partial<BackendStatus>): BackendStatus => ({
  address,
  state: "up",
  weight: 1,
  connections: 0,
  bytes_to_backend: null,
  bytes_from_backend: null,
  reason: "",
  since: null,
  ...o,
});

const status: StatusJson = {
  uplinks: [],
  services: [
    {
      name: "web",
      listen: "203.0.113.10:443",
      protocol: "tcp",
      scheduler: "least-conn",
      persistence: "5m",
      on_backups: true,
      check: {
        method: "https",
        interval_ms: 2000,
        timeout_ms: 500,
        rise: 2,
        fall: 3,
        port: null,
        path: "/healthz",
        expect_status: null,
        host: "www.example.com",
        sni: "www.example.com",
        expect_body: "ok",
      },
      backends: [
        backend("10.1.1.1:443", {
          state: "down",
          backup: false,
          serving: false,
          reason: "https: status 421",
        }),
        backend("10.1.1.9:443", { backup: true, serving: true }),
      ],
    },
  ],
  cluster: null,
  applied_at: new Date().toISOString(),
  config_version: "0123456789ab",
  config_file: "/etc/nflb/nflb.yaml",
  started_at: new Date().toISOString(),
  last_reload_error: null,
  keeping_last_data_plane: false,
};

const daemon: ApiDaemon = {
  status: async () => structuredClone(status),
  setUplinkEnabled: async () => ({ ok: false, status: 404, error: "no uplinks" }),
  setBackendDrained: async () => ({ ok: false, status: 404, error: "not here" }),
  token: () => null,
  events: new EventLog(),
  metrics: async () => ({ contentType: "text/plain", body: "" }),
};

describe("dashboard: persistence, backups and checks of a service", { skip, timeout: 120_000 }, () => {
  const app = buildApi(daemon, { heartbeatMs: 1000 });
  let browser: Browser | undefined;
  let errors: string[] = [];

  before(
    async () => {
      const url = `${await app.listen({ host: "127.0.0.1", port: 0 })}/`;
      browser = await launchBrowser();
      errors = collectErrors(browser.page);
      await browser.page.goto(url);
    },
    { timeout: 90_000 },
  );
  after(async () => {
    await browser?.close();
    await app.close();
  });

  test("the card names the scheduler, persistence and check; a serving backup is marked", async () => {
    const p = browser?.page ?? assert.fail("no browser");
    await p.waitForSelector('#services tr[data-backend="10.1.1.9:443"]');
    const card = (await p.locator('#services [data-service="web"]').textContent()) ?? "";
    assert.match(card, /least-conn · persistence 5m/);
    assert.match(
      card,
      /check: https GET \/healthz every 2s, sni www\.example\.com, host www\.example\.com, body "ok"/,
    );
    assert.match(card, /the backups take new connections/);
    const role = await p.locator('#services tr[data-backend="10.1.1.9:443"] .backend-role').textContent();
    assert.equal(role, "backup · serving");
    assert.equal(await p.locator('#services tr[data-backend="10.1.1.1:443"] .backend-role').isHidden(), true);
    await screenshot(p, "dashboard-services.png");
    assert.deepEqual(
      errors.filter((e) => e.startsWith("pageerror")),
      [],
    );
  });
});
