// Issue 6, "what it must show" 1 and 2: the demo lab's dashboard in headless Chromium, with real
// traffic, a real upstream cut, and a real click that changes the kernel's split.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { exec } from "../../src/system/exec.ts";
import { HOST_LINK } from "../../src/lab/addressing.ts";
import { demoTrafficTargets, startDemo, type Demo } from "../../src/lab/demo.ts";
import { trafficArgv } from "../../src/lab/demo-traffic.ts";
import { labUnavailableReason } from "../../src/lab/netns.ts";
import { bySourceSeen } from "../lab/support/nflb.ts";
import {
  browserUnavailableReason,
  collectErrors,
  launchBrowser,
  screenshot,
  type Browser,
} from "./support/browser.ts";

/** A running `nflb lab up` holds the host link's addresses; a second lab with one cannot be built. */
async function hostLinkBusy(): Promise<string | undefined> {
  const r = await exec(
    ["ip", "-j", "-4", "addr", "show", "to", `${HOST_LINK.host4}/${HOST_LINK.prefixLen}`],
    {
      timeoutMs: 5000,
    },
  );
  const used = r.stdout.trim() ? (JSON.parse(r.stdout) as { ifname: string }[]) : [];
  return used.length
    ? `the host link ${HOST_LINK.host4} is in use (${used[0]?.ifname}): is a demo running? (nflb lab down)`
    : undefined;
}

const unavailable =
  (await labUnavailableReason()) ?? (await browserUnavailableReason()) ?? (await hostLinkBusy());
const skip = unavailable ? `browser lab tests skipped: ${unavailable}` : false;

const uplinkCard = (name: string) => `[data-uplink="${name}"]`;

describe("dashboard of the demo lab, in headless Chromium", { skip, timeout: 420_000 }, () => {
  let demo: Demo | undefined;
  let browser: Browser | undefined;
  let errors: string[] = [];

  before(
    async () => {
      demo = await startDemo();
      // The same bounded stream `nflb lab traffic` starts, as a lab process (stopped by destroy()).
      demo.lab.spawn("lan", trafficArgv({ targets: demoTrafficTargets(), rate: 20, durationMs: 400_000 }));
      browser = await launchBrowser();
      errors = collectErrors(browser.page);
      await browser.page.goto(demo.url);
      // A page reload would drop this marker: the tests check it survives every change.
      await browser.page.evaluate(
        () => ((window as unknown as { nflbNoReload: boolean }).nflbNoReload = true),
      );
    },
    { timeout: 180_000 },
  );

  after(async () => {
    await browser?.close();
    await demo?.destroy();
  });

  const page = () => {
    if (!browser) throw new Error("no browser");
    return browser.page;
  };
  const lab = () => {
    if (!demo) throw new Error("no demo");
    return demo.lab;
  };
  const notReloaded = async () =>
    assert.equal(
      await page().evaluate(() => (window as unknown as { nflbNoReload?: boolean }).nflbNoReload),
      true,
      "the page was reloaded",
    );

  test("shows traffic on every uplink within a minute", { timeout: 90_000 }, async () => {
    await page().waitForFunction(
      () => {
        const cards = [...document.querySelectorAll<HTMLElement>("[data-uplink]")];
        return (
          cards.length === 3 &&
          cards.every((c) => {
            const conns = Number((c.querySelector(".uplink-conns")?.textContent ?? "").replace(/\D/g, ""));
            const rate = Number(c.querySelector(".uplink-rate")?.textContent);
            return conns > 0 && rate > 0;
          })
        );
      },
      null,
      { timeout: 60_000, polling: 250 },
    );
    // Let the charts gather a few points before the picture.
    await page().waitForTimeout(5000);
    await screenshot(page(), "dashboard-traffic.png");
    for (const name of ["isp1", "isp2", "isp3"]) {
      assert.equal(
        await page()
          .locator(`${uplinkCard(name)} .uplink-state`)
          .textContent(),
        "up",
      );
    }
    assert.ok(await page().locator("#split-chart canvas").count(), "the split chart draws");
    assert.deepEqual(
      errors.filter((e) => e.startsWith("pageerror")),
      [],
    );
  });

  test("cutting isp1 upstream shows it down, with its reason, within 2 s", { timeout: 60_000 }, async () => {
    await lab().cutUpstream(1);
    const cutAt = Date.now();
    await page().waitForSelector(`${uplinkCard("isp1")}[data-state="down"]`, { timeout: 2000 });
    await page().waitForSelector('#events li[data-name="isp1"][data-state="down"]:not(.current)', {
      timeout: 2000,
    });
    const shownAfterMs = Date.now() - cutAt;
    const reason = await page()
      .locator(`${uplinkCard("isp1")} .uplink-reason`)
      .textContent();
    const logged = await page()
      .locator('#events li[data-name="isp1"][data-state="down"] .why')
      .first()
      .textContent();
    assert.match(reason ?? "", /without an answer|lost|loss|carrier/i, `card reason: ${reason}`);
    assert.match(logged ?? "", /without an answer|lost|loss|carrier/i, `event reason: ${logged}`);
    // The split follows: isp1's share drops to 0 once the reconciler has applied the failover.
    await page().waitForFunction(
      (sel) => document.querySelector(`${sel} .stats b`)?.textContent === "0 %",
      uplinkCard("isp1"),
      { timeout: 5000 },
    );
    await screenshot(page(), "dashboard-isp1-down.png");
    process.stdout.write(`# isp1 shown down ${shownAfterMs} ms after the cut: ${reason}\n`);

    await lab().restoreUpstream(1);
    await page().waitForSelector(`${uplinkCard("isp1")}[data-state="up"]`, { timeout: 30_000 });
    await notReloaded();
  });

  test(
    "clicking Disable changes the kernel's split and the page shows it without a reload",
    { timeout: 120_000 },
    async () => {
      const p = page();
      const token = demo?.token ?? "";
      const asked: string[] = [];
      const onDialog = (d: import("playwright-core").Dialog) => {
        asked.push(d.message());
        void d.accept(token);
      };
      p.on("dialog", onDialog);
      try {
        await p.locator(`${uplinkCard("isp2")} button.toggle`).click();
        await p.waitForSelector(`${uplinkCard("isp2")}[data-state="disabled"]`, { timeout: 10_000 });
      } finally {
        p.off("dialog", onDialog);
      }
      assert.equal(asked.length, 1, "the page asked for the token once (401 → prompt)");
      assert.equal(await p.locator(`${uplinkCard("isp2")} button.toggle`).textContent(), "Enable");
      await p.waitForFunction(
        (sel) => document.querySelector(`${sel} .stats b`)?.textContent === "0 %",
        uplinkCard("isp2"),
        { timeout: 5000 },
      );

      // Real connections from the LAN: none may leave by isp2 now.
      const echo = lab().ports.echo;
      const server = lab().addr.server4;
      const run = () =>
        lab().runClient({
          from: "lan",
          dst: server,
          port: echo,
          count: 200,
          parallel: 8,
          deadlineMs: 60_000,
        });
      const off = await run();
      assert.equal(off.failed, 0, off.errors.join("; "));
      const seenOff = bySourceSeen(off);
      assert.equal(seenOff[lab().uplink(2).router4] ?? 0, 0, `isp2 still used: ${JSON.stringify(seenOff)}`);
      assert.ok((seenOff[lab().uplink(1).router4] ?? 0) > 0, JSON.stringify(seenOff));
      assert.ok((seenOff[lab().uplink(3).router4] ?? 0) > 0, JSON.stringify(seenOff));
      // One more poll, so the picture includes the connections just made.
      await p.waitForTimeout(1500);
      await screenshot(p, "dashboard-isp2-disabled.png");

      // Enable again: the stored token is used, no second prompt.
      p.on("dialog", (d) => {
        asked.push(d.message());
        void d.dismiss();
      });
      await p.locator(`${uplinkCard("isp2")} button.toggle`).click();
      await p.waitForSelector(`${uplinkCard("isp2")}[data-state="up"]`, { timeout: 10_000 });
      assert.equal(asked.length, 1, "no second prompt: the token was kept in localStorage");
      const on = await run();
      assert.equal(on.failed, 0, on.errors.join("; "));
      const seenOn = bySourceSeen(on);
      assert.ok(
        (seenOn[lab().uplink(2).router4] ?? 0) > 0,
        `isp2 unused after enable: ${JSON.stringify(seenOn)}`,
      );
      assert.ok(
        await p.locator('#events li[data-name="isp2"][data-state="disabled"]').count(),
        "the event log shows it",
      );
      await notReloaded();
    },
  );
});
