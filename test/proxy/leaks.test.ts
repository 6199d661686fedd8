/**
 * No leaks under abuse (issue 15): 20,000 connections through a worker, one client in ten
 * hanging up in the middle of a slow answer, and afterwards the worker's open descriptors and
 * its heap after a full collection are back where they were before.
 */
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, waitFor, type TestInstance } from "../support/harness.js";
import { freePort } from "../support/net.js";
import { startEchoApp, type EchoApp } from "./support/echo-app.js";
import { heapAfterGc, openFds } from "./support/inspector.js";
import { startPortWorker, type PortWorker } from "./support/port-worker.js";
import { removeDir } from "./support.js";
import { createRoute, workerIdOf } from "./support/routes.js";

const CONNECTIONS = 20_000;
/**
 * 20,000 connections take seconds on a quiet machine and minutes on a busy one, hence this
 * test's own time limit (a limit, not an assertion: nothing here is timed).
 */
const TIME_LIMIT_MS = 240_000;
const IN_FLIGHT = 50;
/** Heap that may stay after 20,000 connections without being a leak (caches, JIT, pools). */
const HEAP_SLACK = 4 * 2 ** 20;

/**
 * One connection of its own per request (no keep-alive). Every tenth client asks for a slow
 * answer and destroys its socket once the first bytes arrive; the others read a whole answer.
 */
function oneConnection(base: string, i: number): Promise<"ok" | "aborted" | string> {
  const abort = i % 10 === 9;
  const path = abort ? "/bytes/262144?chunks=64&gap_ms=5" : `/bytes/2048`;
  return new Promise((resolve) => {
    const req = http.get(`${base}${path}`, { agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve(`status ${res.statusCode}`);
        return;
      }
      if (abort) {
        res.once("data", () => {
          req.destroy();
          resolve("aborted");
        });
        return;
      }
      let bytes = 0;
      res.on("data", (chunk: Buffer) => (bytes += chunk.length));
      res.on("end", () => resolve(bytes === 2048 ? "ok" : `${bytes} bytes`));
    });
    req.on("error", (error) => resolve(abort ? "aborted" : error.message));
  });
}

async function drive(base: string, total: number): Promise<Map<string, number>> {
  const outcomes = new Map<string, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < total) {
        const outcome = await oneConnection(base, next++);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    }),
  );
  return outcomes;
}

describe("connections and aborts leave nothing behind", () => {
  let harness: TestInstance & { close(): Promise<void> };
  let app: EchoApp;
  let worker: PortWorker;
  let inspectUrl: string;

  beforeAll(async () => {
    harness = await startHarness();
    // Idle upstream connections close after a second, so the worker's pool empties by itself.
    app = await startEchoApp({ keepAliveTimeoutMs: 1000 });
    const inspectPort = await freePort();
    inspectUrl = `http://127.0.0.1:${inspectPort}`;
    worker = await startPortWorker(harness.url, {
      nodeArgs: [`--inspect=127.0.0.1:${inspectPort}`],
    });
  });

  afterAll(async () => {
    await worker?.kill();
    await app?.close();
    await harness?.close();
    if (worker) removeDir(worker.dataDir);
  });

  it(
    "returns to its descriptors and heap after 20,000 connections with 10 % aborted",
    async () => {
      const workerId = await workerIdOf(harness.manager, worker.name);
      const route = await createRoute(harness.manager, workerId, worker.portRange[0], app.port);
      const base = `http://${worker.host}:${route.port}`;

      // Warm up first: code compiled, pools and caches made, so that what stays is what leaks.
      const warm = await drive(base, 1000);
      expect(warm.get("ok")).toBe(900);
      const settledFds = async () => {
        let last = -1;
        // Upstream connections close within the app's keep-alive timeout; wait for the count to hold.
        return waitFor(
          async () => {
            await new Promise((r) => setTimeout(r, 1500));
            const now = openFds(worker.pid);
            const steady = now === last;
            last = now;
            return steady ? now : undefined;
          },
          30_000,
          "the worker's descriptors to settle",
        );
      };
      const fdsBefore = await settledFds();
      const heapBefore = await heapAfterGc(inspectUrl);

      const outcomes = await drive(base, CONNECTIONS);
      expect(Object.fromEntries(outcomes)).toEqual({
        ok: CONNECTIONS * 0.9,
        aborted: CONNECTIONS * 0.1,
      });

      const fdsAfter = await settledFds();
      const heapAfter = await heapAfterGc(inspectUrl);
      expect(fdsAfter).toBeLessThanOrEqual(fdsBefore!);
      expect(heapAfter - heapBefore).toBeLessThan(HEAP_SLACK);
      // The worker still serves.
      const res = await fetch(`${base}/after`);
      expect(await res.text()).toBe("app /after");
    },
    TIME_LIMIT_MS,
  );
});
