/**
 * Debian's Chromium driven by playwright-core, started the way this machine needs it: headless,
 * no sandbox (tests run as root), no GPU, and with every background service that dials out
 * turned off, on a fresh profile directory removed at close.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium, type BrowserContext } from "playwright-core";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * A browser context on a profile of its own (playwright takes the user-data-dir as an argument
 * of the persistent context rather than as a flag).
 */
export async function launchChromium(extraFlags: string[] = []): Promise<Browser> {
  const profile = mkdtempSync(path.join(os.tmpdir(), "appproxy-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...FLAGS, ...extraFlags],
      timeout: 30_000,
    });
    return {
      context,
      close: async () => {
        await context.close().catch(() => undefined);
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
}
