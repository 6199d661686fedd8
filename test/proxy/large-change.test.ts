/**
 * A change larger than one slice (docs/worker.md: changes cross to the serving thread 250 routes
 * at a time) is served whole once acknowledged, and taken away whole: a batch of 1,000 routes
 * answered with wait=applied is served on every route at once, and the session's deletion leaves
 * none of them.
 */
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteAnswer } from "../support/factories.js";
import { startHarness } from "../support/harness.js";
import { freePortRange, startUpstreamApp, type UpstreamApp } from "./support.js";
import { startInProcessWorker, type InProcessWorker } from "./support/in-process-worker.js";

const DOMAIN = "apps.test";
const ROUTES = 1000;

let h: Awaited<ReturnType<typeof startHarness>>;
let w: InProcessWorker;
let app: UpstreamApp;
let trafficPort: number;

beforeAll(async () => {
  h = await startHarness({ WORKER_LOST_AFTER_S: "3600" });
  app = await startUpstreamApp();
  const host = "127.0.0.31";
  [trafficPort] = (await freePortRange([host], 1)) as [number, number];
  w = await startInProcessWorker(h.url, {
    name: "w-large",
    host,
    ports: 0,
    env: { WILDCARD_DOMAIN: DOMAIN, WILDCARD_TRAFFIC_PORT: String(trafficPort) },
  });
}, 60_000);

afterAll(async () => {
  await w?.close();
  await app?.close();
  await h?.close();
});

/** The status of GET / on the route whose subdomain is `subdomain`, through the worker. */
function statusThrough(subdomain: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        host: w.host,
        port: trafficPort,
        path: "/",
        agent: false,
        headers: { host: `${subdomain}.${DOMAIN}` },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.once("error", reject);
  });
}

describe("a change of many slices", () => {
  it("serves every route of an acknowledged 1,000-route batch, and drops them all at once", async () => {
    const created = await h.manager.post<{ version: number; items: RouteAnswer[] }>(
      "/routes/batch?wait=applied&timeout_ms=20000",
      {
        routes: Array.from({ length: ROUTES }, (_, i) => ({
          session_id: "s-large",
          app: `app-${i}`,
          worker_id: w.workerId,
          open_to_public: true,
          upstreams: [{ host: "127.0.0.1", port: app.httpPort, weight: 1 }],
        })),
      },
    );
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.headers.get("x-propagation")).toBe("applied");
    const { items, version } = created.body;
    expect(w.worker.status()).toMatchObject({ routes: ROUTES, version });
    expect(w.worker.index().bySubdomain.size).toBe(ROUTES);
    for (const route of [items[0], items[499], items[ROUTES - 1]]) {
      expect(await statusThrough(route!.subdomain!)).toBe(200);
    }

    const deleted = await h.manager.delete<{ deleted: number }>(
      "/routes?session_id=s-large&wait=applied&timeout_ms=20000",
    );
    expect(deleted.status).toBe(200);
    expect(deleted.body.deleted).toBe(ROUTES);
    expect(w.worker.status().routes).toBe(0);
    expect(w.worker.index().bySubdomain.size).toBe(0);
    expect(await statusThrough(items[499]!.subdomain!)).toBe(404);
  }, 60_000);
});
