/**
 * Table changes without harm (issue 15): while routes on a worker are created, re-pointed and
 * deleted at 50 changes a second, traffic on its other routes sees no failed request, and the
 * churned routes end up served exactly as the table says.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteAnswer } from "../support/factories.js";
import { startHarness, waitFor, type TestInstance } from "../support/harness.js";
import { startEchoApp, type EchoApp } from "./support/echo-app.js";
import { startPortWorker, type PortWorker } from "./support/port-worker.js";
import { removeDir } from "./support.js";
import { createRoute, workerIdOf } from "./support/routes.js";
import { startTraffic } from "./support/traffic.js";

const CHANGES_PER_S = 50;
const CHANGES = 500;
const STEADY_ROUTES = 3;
const CHURN_PORTS = 12;
/** 500 changes at 50 a second take 10 s, longer where a busy machine slows the coordinator. */
const TIME_LIMIT_MS = 120_000;

describe("route churn beside live traffic", () => {
  let harness: TestInstance & { close(): Promise<void> };
  let apps: EchoApp[];
  let worker: PortWorker;

  beforeAll(async () => {
    harness = await startHarness();
    apps = [await startEchoApp(), await startEchoApp()];
    worker = await startPortWorker(harness.url, { ports: STEADY_ROUTES + CHURN_PORTS });
  });

  afterAll(async () => {
    await worker?.kill();
    for (const app of apps ?? []) await app.close();
    await harness?.close();
    if (worker) removeDir(worker.dataDir);
  });

  it(
    "fails no request on untouched routes at 50 changes a second",
    async () => {
      const workerId = await workerIdOf(harness.manager, worker.name);
      const urls: string[] = [];
      for (let i = 0; i < STEADY_ROUTES; i++) {
        const route = await createRoute(
          harness.manager,
          workerId,
          worker.portRange[0] + i,
          apps[0]!.port,
        );
        urls.push(`http://${worker.host}:${route.port}/steady-${i}`);
      }
      const traffic = startTraffic(urls);
      await traffic.progress(50);

      // Each churn port cycles: create (to app 0) → re-point (to app 1) → delete.
      const live = new Map<number, RouteAnswer>();
      const upstream = (app: EchoApp) => [{ host: "127.0.0.1", port: app.port, weight: 1 }];
      const change = async (i: number): Promise<void> => {
        const port = worker.portRange[0] + STEADY_ROUTES + (i % CHURN_PORTS);
        const step = Math.floor(i / CHURN_PORTS) % 3;
        const route = live.get(port);
        if (step === 0) {
          const res = await harness.manager.post<RouteAnswer>("/routes", {
            session_id: `churn-${i}`,
            app: "jupyter",
            worker_id: workerId,
            port,
            upstreams: upstream(apps[0]!),
            open_to_public: true,
          });
          expect(res.status, JSON.stringify(res.body)).toBe(201);
          live.set(port, res.body);
        } else if (step === 1) {
          const res = await harness.manager.patch(`/routes/${route!.id}`, {
            upstreams: upstream(apps[1]!),
          });
          expect(res.status, JSON.stringify(res.body)).toBe(200);
        } else {
          const res = await harness.manager.delete(`/routes/${route!.id}`);
          expect(res.status).toBe(204);
          live.delete(port);
        }
      };
      // Paced at 50 a second from the start; a change waits for the earlier one on its port.
      const start = Date.now();
      const byPort = new Map<number, Promise<void>>();
      for (let i = 0; i < CHANGES; i++) {
        const due = start + (i * 1000) / CHANGES_PER_S - Date.now();
        if (due > 0) await new Promise((r) => setTimeout(r, due));
        const port = i % CHURN_PORTS;
        byPort.set(
          port,
          (byPort.get(port) ?? Promise.resolve()).then(() => change(i)),
        );
      }
      await Promise.all(byPort.values());
      await traffic.progress(50);
      const tally = await traffic.stop();
      expect(tally.failures).toEqual([]);
      expect(tally.failed).toBe(0);

      // The worker ends at the head version, serving the churned routes as they stand.
      const status = await harness.admin.get<{ routing: { version: number } }>("/status");
      const head = status.body.routing.version;
      await waitFor(
        async () => {
          const res = await fetch(`${worker.opsUrl}/readyz`);
          return ((await res.json()) as { version: number }).version >= head;
        },
        30_000,
        "the worker to reach the head version",
      );
      for (let p = 0; p < CHURN_PORTS; p++) {
        const port = worker.portRange[0] + STEADY_ROUTES + p;
        const res = await fetch(`http://${worker.host}:${port}/end`);
        expect(res.status).toBe(live.has(port) ? 200 : 404);
        await res.arrayBuffer();
      }
    },
    TIME_LIMIT_MS,
  );
});
