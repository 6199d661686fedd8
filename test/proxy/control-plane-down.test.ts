/**
 * The data plane never depends on the control plane being up (issue 15): requests keep flowing
 * through two workers while the coordinator is SIGKILLed and restarted, and while its database
 * is unreachable (PostgreSQL behind a TCP proxy that is cut; on the embedded database, which
 * lives inside the coordinator's process, the coordinator is stopped instead). Not one request
 * on those routes may fail. Afterwards the fleet takes changes again.
 *
 * The coordinator starts three times here; on the embedded database each start opens PGlite
 * (seconds, and far more on a busy machine), hence the longer time limit of this one test.
 */
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, inject } from "vitest";
import { CuttableProxy } from "../support/cuttable-proxy.js";
import { createTestDatabase, onPostgres, type TestDatabase } from "../support/database.js";
import { Api, TOKENS, waitFor } from "../support/harness.js";
import { freePort } from "../support/net.js";
import { startEchoApp, type EchoApp } from "./support/echo-app.js";
import {
  killCoordinators,
  startCoordinatorProcess,
  type CoordinatorProcess,
} from "./support/coordinator-process.js";
import { startPortWorker, type PortWorker } from "./support/port-worker.js";
import { removeDir } from "./support.js";
import { createRoute, workerIdOf } from "./support/routes.js";
import { startTraffic, type Traffic } from "./support/traffic.js";

/** See the file's comment: three coordinator starts. A limit, not an assertion. */
const TIME_LIMIT_MS = 180_000;

interface WorkerReadiness {
  coordinator: "connected" | "disconnected";
  version: number;
}

async function readiness(worker: PortWorker): Promise<{ status: number; body: WorkerReadiness }> {
  const res = await fetch(`${worker.opsUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as WorkerReadiness };
}

/** Polls until every worker's /readyz says `coordinator` is as given (and still 200). */
async function coordinatorIs(workers: PortWorker[], state: WorkerReadiness["coordinator"]) {
  await waitFor(
    async () => {
      const all = await Promise.all(workers.map(readiness));
      for (const r of all) expect(r.status).toBe(200);
      return all.every((r) => r.body.coordinator === state);
    },
    30_000,
    `workers to see the coordinator ${state}`,
  );
}

describe("requests flow while the control plane is down", () => {
  let testDb: TestDatabase;
  let dbProxy: CuttableProxy | undefined;
  let dataDir: string;
  let coordinatorEnv: Record<string, string>;
  let port: number;
  let coordinator: CoordinatorProcess;
  let app: EchoApp;
  const workers: PortWorker[] = [];
  let traffic: Traffic | undefined;

  const manager = () => new Api(coordinator.url, TOKENS.manager);
  const restart = async () => {
    coordinator = await startCoordinatorProcess(coordinatorEnv, port);
  };

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), "appproxy-cp-down-"));
    testDb = await createTestDatabase();
    if (onPostgres()) {
      const target = new URL(testDb.url!);
      dbProxy = await CuttableProxy.start({ host: target.hostname, port: Number(target.port) });
      target.host = `127.0.0.1:${dbProxy.port}`;
      coordinatorEnv = { DATABASE_URL: target.toString() };
    } else {
      // The migrated template, so the coordinator does not spend seconds creating a database.
      cpSync(inject("pgliteTemplate"), path.join(dataDir, "coordinator", "pgdata"), {
        recursive: true,
      });
      coordinatorEnv = { DATA_DIR: path.join(dataDir, "coordinator") };
    }
    port = await freePort();
    await restart();
    app = await startEchoApp();
    for (let i = 0; i < 2; i++) workers.push(await startPortWorker(coordinator.url));
  });

  afterAll(async () => {
    await traffic?.stop();
    for (const worker of workers) await worker.kill();
    await killCoordinators();
    await app?.close();
    await dbProxy?.close();
    await testDb?.drop();
    for (const worker of workers) removeDir(worker.dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(
    "serves every request through SIGKILL, restart and a database outage",
    async () => {
      const urls: string[] = [];
      for (const worker of workers) {
        const id = await workerIdOf(manager(), worker.name);
        const route = await createRoute(manager(), id, worker.portRange[0], app.port);
        urls.push(`http://${worker.host}:${route.port}/steady-${worker.name}`);
      }
      traffic = startTraffic(urls);
      await traffic.progress(50);
      await coordinatorIs(workers, "connected");

      // The coordinator dies without a word.
      await coordinator.kill();
      await coordinatorIs(workers, "disconnected");
      await traffic.progress(200);
      await restart();
      await coordinatorIs(workers, "connected");
      await traffic.progress(50);

      // The database goes away.
      if (dbProxy) {
        dbProxy.cut();
        await waitFor(
          async () => (await fetch(`${coordinator.url}/readyz`)).status === 503,
          30_000,
          "the coordinator to see its database gone",
        );
        await traffic.progress(200);
        dbProxy.restore();
        await waitFor(
          async () => (await fetch(`${coordinator.url}/readyz`)).status === 200,
          30_000,
          "the coordinator to see its database back",
        );
      } else {
        await coordinator.stop();
        await coordinatorIs(workers, "disconnected");
        await traffic.progress(200);
        await restart();
        await coordinatorIs(workers, "connected");
      }
      await traffic.progress(50);

      const tally = await traffic.stop();
      traffic = undefined;
      expect(tally.failures).toEqual([]);
      expect(tally.failed).toBe(0);
      expect(tally.ok).toBeGreaterThanOrEqual(600);

      // And the fleet takes changes again: a new route on each worker is served.
      for (const worker of workers) {
        const id = await workerIdOf(manager(), worker.name);
        const route = await createRoute(manager(), id, worker.portRange[0] + 1, app.port);
        const res = await fetch(`http://${worker.host}:${route.port}/after`);
        expect(res.status).toBe(200);
        expect(await res.text()).toBe("app /after");
      }
    },
    TIME_LIMIT_MS,
  );
});
