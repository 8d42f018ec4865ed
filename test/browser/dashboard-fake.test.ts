// The dashboard against the real HTTP API over a fake daemon: everything the demo lab cannot show
// (a cluster, a refused token, a phone-sized screen), without root or namespaces.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Dialog } from "playwright-core";
import { buildApi, type ActionResult, type ApiDaemon } from "../../src/api/server.ts";
import { EventLog } from "../../src/daemon/events.ts";
import type { StatusJson } from "../../src/daemon/status.ts";
import {
  browserUnavailableReason,
  collectErrors,
  launchBrowser,
  screenshot,
  type Browser,
} from "./support/browser.ts";

const unavailable = await browserUnavailableReason();
const skip = unavailable ? `browser tests skipped: ${unavailable}` : false;

const TOKEN = "fake-token-123";

function uplink(name: string, weight: number, share: number): StatusJson["uplinks"][number] {
  return {
    name,
    interface: `wan${name.slice(-1)}`,
    state: "up",
    reason: "10 good rounds in a row",
    since: new Date().toISOString(),
    weight,
    effective_weight: weight,
    share,
    rtt_ms: 12.5,
    jitter_ms: 0.4,
    loss: 0,
    connections: 100,
    probed: true,
  };
}

function fakeDaemon() {
  const calls: string[] = [];
  const events = new EventLog();
  const status: StatusJson = {
    uplinks: [uplink("isp1", 3, 0.75), uplink("isp2", 1, 0.25)],
    services: [
      {
        name: "web",
        listen: "203.0.113.10:80",
        protocol: "tcp",
        backends: [
          {
            address: "10.1.1.1:80",
            state: "up",
            weight: 1,
            connections: 5,
            bytes_to_backend: null,
            bytes_from_backend: null,
            reason: "",
            since: null,
          },
          {
            address: "10.1.1.2:80",
            state: "down",
            weight: 1,
            connections: 0,
            bytes_to_backend: null,
            bytes_from_backend: null,
            reason: "connect refused",
            since: null,
          },
        ],
      },
    ],
    cluster: {
      node: "node-a",
      buckets_owned: 128,
      members: [
        { node: "node-a", buckets: 128, target: 128 },
        { node: "node-b", buckets: 128, target: 128 },
      ],
    },
    applied_at: new Date().toISOString(),
    config_version: "0123456789ab",
    config_file: "/etc/nflb/nflb.yaml",
    started_at: new Date().toISOString(),
    last_reload_error: null,
    keeping_last_data_plane: false,
  };
  const d: ApiDaemon = {
    status: async () => {
      // Counters grow like a kernel's would, so the page computes a rate.
      for (const u of status.uplinks) if (u.connections !== null) u.connections += u.state === "up" ? 7 : 0;
      return structuredClone(status);
    },
    setUplinkEnabled: async (name, enabled): Promise<ActionResult> => {
      calls.push(`${name} ${enabled ? "enable" : "disable"}`);
      const u = status.uplinks.find((x) => x.name === name);
      if (!u) return { ok: false, status: 404, error: `no uplink ${name}` };
      u.state = enabled ? "up" : "disabled";
      events.publish({
        kind: "uplink",
        name,
        state: u.state,
        reason: `${enabled ? "enabled" : "disabled"} through the API`,
      });
      return { ok: true, body: { uplink: name, state: u.state } };
    },
    setBackendDrained: async (svc, backend, drained): Promise<ActionResult> => {
      calls.push(`${svc} ${backend} ${drained ? "drain" : "enable"}`);
      const b = status.services.find((s) => s.name === svc)?.backends.find((x) => x.address === backend);
      if (!b) return { ok: false, status: 404, error: `no backend ${backend}` };
      b.state = drained ? "draining" : "up";
      return { ok: true, body: { service: svc, backend, state: b.state } };
    },
    token: () => TOKEN,
    events,
    metrics: async () => ({ contentType: "text/plain", body: "" }),
  };
  return { d, calls, events, status };
}

describe("dashboard against a fake daemon, in headless Chromium", { skip, timeout: 180_000 }, () => {
  const fake = fakeDaemon();
  const app = buildApi(fake.d, { heartbeatMs: 1000 });
  let url = "";
  let browser: Browser | undefined;
  let errors: string[] = [];

  before(
    async () => {
      url = `${await app.listen({ host: "127.0.0.1", port: 0 })}/`;
      browser = await launchBrowser();
      errors = collectErrors(browser.page);
      await browser.page.goto(url);
      await browser.page.evaluate(
        () => ((window as unknown as { nflbNoReload: boolean }).nflbNoReload = true),
      );
    },
    { timeout: 90_000 },
  );

  after(async () => {
    await browser?.close();
    await app.close();
  });

  const page = () => {
    if (!browser) throw new Error("no browser");
    return browser.page;
  };

  test("shows uplinks, the service's backends and the cluster's members", async () => {
    const p = page();
    await p.waitForSelector('[data-uplink="isp2"]');
    await p.waitForSelector('#services tr[data-backend="10.1.1.2:80"][data-state="down"]');
    assert.match((await p.locator("#services").textContent()) ?? "", /connect refused/);
    assert.equal(await p.locator("#cluster tr[data-member]").count(), 2);
    assert.match((await p.locator("#cluster").textContent()) ?? "", /owns 128 buckets/);
    assert.equal(await p.locator("#live.pill.live").count(), 1, "the event stream is connected");
    assert.deepEqual(
      errors.filter((e) => e.startsWith("pageerror")),
      [],
    );
  });

  test("an event from the daemon appears at once, with its reason", async () => {
    const p = page();
    await p.locator("#live.live").waitFor();
    fake.events.publish({
      kind: "cluster",
      name: "node-a",
      state: "192 buckets",
      reason: "node-c left (lease expired)",
    });
    const li = p.locator('#events li[data-kind="cluster"]');
    await li.waitFor({ timeout: 3000 });
    assert.match((await li.textContent()) ?? "", /node-c left \(lease expired\)/);
  });

  test("a refused token is asked for again, then kept; drain and disable change the page without a reload", async () => {
    const p = page();
    await p.evaluate(() => localStorage.setItem("nflb.token", "wrong-token"));
    const asked: string[] = [];
    const onDialog = (d: Dialog) => {
      asked.push(d.message());
      void d.accept(TOKEN);
    };
    p.on("dialog", onDialog);
    await p.locator('#services tr[data-backend="10.1.1.1:80"] button').click();
    await p.waitForSelector('#services tr[data-backend="10.1.1.1:80"][data-state="draining"]', {
      timeout: 5000,
    });
    assert.equal(asked.length, 1);
    assert.match(asked[0] ?? "", /refused/);
    assert.equal(await p.evaluate(() => localStorage.getItem("nflb.token")), TOKEN);
    assert.equal(await p.locator('#services tr[data-backend="10.1.1.1:80"] button').textContent(), "Enable");

    await p.locator('[data-uplink="isp1"] button.toggle').click();
    await p.waitForSelector('[data-uplink="isp1"][data-state="disabled"]', { timeout: 5000 });
    await p.waitForSelector('#events li[data-name="isp1"][data-state="disabled"]', { timeout: 5000 });
    p.off("dialog", onDialog);
    assert.equal(asked.length, 1, "the stored token was used");
    assert.deepEqual(fake.calls, ["web 10.1.1.1:80 drain", "isp1 disable"]);
    assert.equal(
      await p.evaluate(() => (window as unknown as { nflbNoReload?: boolean }).nflbNoReload),
      true,
    );
  });

  test("is readable on a phone: one column, nothing wider than the screen", async () => {
    const p = page();
    await p.setViewportSize({ width: 390, height: 844 });
    await p.waitForTimeout(500);
    const { scroll, inner } = await p.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      inner: window.innerWidth,
    }));
    assert.ok(scroll <= inner, `page is ${scroll}px wide on a ${inner}px screen`);
    const boxes = await p
      .locator("[data-uplink]")
      .evaluateAll((els) => els.map((e) => e.getBoundingClientRect().x));
    assert.equal(new Set(boxes.map(Math.round)).size, 1, "uplink cards stack in one column");
    await screenshot(p, "dashboard-phone.png");
  });
});
