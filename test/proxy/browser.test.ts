/**
 * What a user of "open Jupyter" sees (issue 15): a real browser (Debian's Chromium through
 * playwright-core) opens a route's setup_url, is sent on to the app's page with a permit cookie,
 * and the page's own WebSocket round trip through the worker works. The app never sees the
 * permit.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type TestInstance } from "../support/harness.js";
import { launchChromium, type Browser } from "./support/browser.js";
import { startEchoApp, type EchoApp } from "./support/echo-app.js";
import { startPortWorker, type PortWorker } from "./support/port-worker.js";
import { removeDir } from "./support.js";
import { createRoute, workerIdOf } from "./support/routes.js";

describe("a browser reaches an app through its setup_url", () => {
  let harness: TestInstance & { close(): Promise<void> };
  let app: EchoApp;
  let worker: PortWorker;
  let browser: Browser | undefined;

  beforeAll(async () => {
    harness = await startHarness();
    app = await startEchoApp();
    worker = await startPortWorker(harness.url);
  });

  afterAll(async () => {
    await browser?.close();
    await worker?.kill();
    await app?.close();
    await harness?.close();
    if (worker) removeDir(worker.dataDir);
  });

  it("lands on the app page and its WebSocket round trip works", async () => {
    const workerId = await workerIdOf(harness.manager, worker.name);
    const route = await createRoute(harness.manager, workerId, worker.portRange[0], app.port, {
      open_to_public: false,
    });
    const issued = await harness.manager.post<{ setup_url: string }>(`/routes/${route.id}/tokens`, {
      user_id: "u1",
    });
    expect(issued.status, JSON.stringify(issued.body)).toBe(201);

    browser = await launchChromium();
    const page = await browser.context.newPage();
    const answer = await page.goto(issued.body.setup_url);
    expect(answer?.status()).toBe(200);
    expect(page.url()).toBe(route.url);
    expect(await page.textContent("#title")).toBe("echo app");
    // The page's script (run in the browser, hence a string) writes the echo or the failure.
    await page.waitForFunction(
      'document.getElementById("echo").textContent !== "waiting"',
      undefined,
      {
        timeout: 20_000,
      },
    );
    expect(await page.textContent("#echo")).toBe("echo: round trip /");

    // The permit is an HttpOnly cookie of this route's host, and stays between the browser and
    // the worker.
    const cookies = await browser.context.cookies(route.url);
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) {
      expect(cookie.httpOnly).toBe(true);
      expect(app.lastHeaders?.cookie ?? "").not.toContain(cookie.value);
    }

    // Without the permit the same page is refused.
    await browser.context.clearCookies();
    const refused = await page.goto(route.url);
    expect(refused?.status()).toBe(401);
  });
});
