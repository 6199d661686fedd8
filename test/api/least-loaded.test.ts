import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness } from "../support/harness.js";
import {
  portWorker,
  registerWorker,
  routeBody,
  type RouteAnswer,
  type WorkerAnswer,
} from "../support/factories.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;
let h: Harness;
let plain: WorkerAnswer[];
let gpu: WorkerAnswer;
let wide: WorkerAnswer;

/*
 * A create reads only the least loaded eligible workers (2 per route placed anywhere, and 16 more):
 * here 24 idle workers come first, and the workers that can take the routes below are busier.
 */
beforeAll(async () => {
  h = await startHarness();
  plain = [];
  for (let i = 0; i < 24; i++) {
    plain.push(await registerWorker(h.registration, portWorker({ port_range: [10200, 10209] })));
  }
  gpu = await registerWorker(
    h.registration,
    portWorker({ port_range: [10200, 10209], labels: { gpu: "a100" } }),
  );
  wide = await registerWorker(h.registration, portWorker({ port_range: [20000, 20009] }));
  for (const w of [gpu, wide, wide]) {
    const res = await h.manager.post("/routes", routeBody({ worker_id: w.worker.id }));
    expect(res.status).toBe(201);
  }
});
afterAll(() => h?.close());

describe("placement past the least loaded workers read", () => {
  it("places a route on the least loaded worker, by name among equals", async () => {
    const first = [...plain].sort((a, b) => (a.worker.name < b.worker.name ? -1 : 1))[0]!;
    const res = await h.manager.post<RouteAnswer>("/routes", routeBody());
    expect(res.status).toBe(201);
    expect(res.body.worker_id).toBe(first.worker.id);
  });

  it("finds the one worker whose labels match, however many idle workers come before it", async () => {
    const res = await h.manager.post<RouteAnswer>(
      "/routes",
      routeBody({ worker_selector: { gpu: "a100" } }),
    );
    expect(res.status).toBe(201);
    expect(res.body.worker_id).toBe(gpu.worker.id);
    expect(res.body.port).toBe(10201);
  });

  it("finds the one worker whose range holds an asked port, and answers 409 once it is taken", async () => {
    const res = await h.manager.post<RouteAnswer>("/routes", routeBody({ port: 20005 }));
    expect(res.status).toBe(201);
    expect(res.body.worker_id).toBe(wide.worker.id);
    const again = await h.manager.post("/routes", routeBody({ port: 20005 }));
    expect(again.status).toBe(409);
  });

  it("answers 503 when no worker of the fleet can take the route", async () => {
    const res = await h.manager.post("/routes", routeBody({ worker_selector: { gpu: "h100" } }));
    expect(res.status).toBe(503);
  });

  it("places a batch that needs both the workers read and one past them", async () => {
    const res = await h.manager.post<{ items: RouteAnswer[] }>("/routes/batch", {
      routes: [routeBody(), routeBody({ worker_selector: { gpu: "a100" } }), routeBody()],
    });
    expect(res.status).toBe(201);
    const [a, b, c] = res.body.items;
    expect(b!.worker_id).toBe(gpu.worker.id);
    expect(plain.map((w) => w.worker.id)).toContain(a!.worker_id);
    expect(plain.map((w) => w.worker.id)).toContain(c!.worker_id);
    expect(a!.worker_id).not.toBe(c!.worker_id);
  });
});
