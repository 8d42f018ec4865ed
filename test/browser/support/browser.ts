// Debian's Chromium driven by playwright-core: no browser download, a fresh profile per run.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BrowserContext, Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const ARTIFACTS = fileURLToPath(new URL("../../../artifacts/", import.meta.url));

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Why browser tests cannot run here, or undefined. */
export async function browserUnavailableReason(): Promise<string | undefined> {
  if (!existsSync(CHROMIUM))
    return `${CHROMIUM} is missing (NFLB_WITH_BROWSER=1 bash scripts/ensure-deps installs it)`;
  try {
    await import("playwright-core");
  } catch {
    return "playwright-core is not installed (npm ci)";
  }
  return undefined;
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/** `extraArgs`: more Chromium flags, e.g. `--host-resolver-rules=…` to point a name at 127.0.0.1. */
export async function launchBrowser(
  viewport = { width: 1280, height: 900 },
  extraArgs: readonly string[] = [],
): Promise<Browser> {
  const { chromium } = await import("playwright-core");
  const profile = await mkdtemp(join(tmpdir(), "nflb-chromium-"));
  let context: BrowserContext;
  try {
    // A persistent context on a fresh directory is what passes --user-data-dir.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...ARGS, ...extraArgs],
      viewport,
      timeout: 60_000,
    });
  } catch (e) {
    await rm(profile, { recursive: true, force: true });
    throw e;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    close: async () => {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Save a screenshot under artifacts/ and return its path. */
export async function screenshot(page: Page, name: string, fullPage = true): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage });
  return path;
}

/** Page errors and console errors, for assertions and failure messages. */
export function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  return errors;
}
