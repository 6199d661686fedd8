import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkerClient } from "../../src/client/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { TOKENS, startInstance, waitFor, type TestInstance } from "../support/harness.js";
import { portWorker, registerWorker, routeBody, type RouteAnswer } from "../support/factories.js";

let testDb: TestDatabase;
let a: TestInstance;
let b: TestInstance;
const clients: WorkerClient[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase();
  // One worker stays away on purpose: the reaper must not count it lost and move its routes.
  const env = { WORKER_LOST_AFTER_S: "3600" };
  a = await startInstance(await testDb.open(), env);
  b = await startInstance(await testDb.open(), env);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  await a?.stop();
  await b?.stop();
  await testDb?.drop();
});

let workerCount = 0;

/** A worker process on `instance`, its stream open and its first table acknowledged. */
async function startWorker(instance: TestInstance): Promise<WorkerClient> {
  workerCount += 1;
  const client = new WorkerClient({
    coordinatorUrl: instance.url,
    registrationToken: TOKENS.registration,
    registration: {
      name: `wait-${process.pid}-${workerCount}`,
      advertised_host: "127.0.0.1",
      frontend_mode: "port",
      port_range: [20000 + workerCount * 100, 20099 + workerCount * 100],
      protocols: ["http", "tcp"],
    },
    reconnectMinMs: 20,
    reconnectMaxMs: 200,
  });
  clients.push(client);
  let instanceId: string | undefined;
  let synced = false;
  client.on("connected", (e) => (instanceId = e.instanceId));
  client.on("synced", () => (synced = true));
  await client.start();
  await waitFor(() => synced, 10_000, "the worker's first sync");
  expect(instanceId).toBe(instance.coordinator.instanceId);
  await waitFor(
    async () =>
      (await instance.admin.get<{ connected: boolean }>(`/workers/${client.workerId}`)).body
        .connected,
    5000,
    "connected",
  );
  return client;
}

describe("?wait=applied", () => {
  it("answers only when the worker's table already holds the change", async () => {
    const w1 = await startWorker(a);
    const w2 = await startWorker(a);

    const created = await a.manager.post<RouteAnswer>(
      "/routes?wait=applied",
      routeBody({ worker_id: w1.workerId }),
    );
    expect(w1.table.get(created.body.id)?.version).toBe(created.body.version);
    expect(created.status).toBe(201);
    expect(created.headers.get("x-propagation")).toBe("applied");

    const patched = await a.manager.patch<RouteAnswer>(`/routes/${created.body.id}?wait=applied`, {
      labels: { tier: "gold" },
    });
    expect(w1.table.get(created.body.id)).toMatchObject({
      version: patched.body.version,
      labels: { tier: "gold" },
    });
    expect(patched.status).toBe(200);

    const deleted = await a.manager.delete(`/routes/${created.body.id}?wait=applied`);
    expect(w1.table.get(created.body.id)).toBeUndefined();
    expect(deleted.status).toBe(204);

    const session = `wait-session-${process.pid}`;
    const batch = await a.manager.post<{ version: number; items: RouteAnswer[] }>(
      "/routes/batch?wait=applied&timeout_ms=10000",
      {
        routes: [
          routeBody({ session_id: session, worker_id: w1.workerId }),
          routeBody({ session_id: session, worker_id: w2.workerId }),
        ],
      },
    );
    const [r1, r2] = batch.body.items;
    expect(w1.table.get(r1!.id)?.version).toBe(batch.body.version);
    expect(w2.table.get(r2!.id)?.version).toBe(batch.body.version);
    expect(batch.status).toBe(201);

    const gone = await a.manager.delete<{ deleted: number }>(
      `/routes?session_id=${session}&wait=applied`,
    );
    expect([w1.table.get(r1!.id), w2.table.get(r2!.id)]).toEqual([undefined, undefined]);
    expect(gone.status).toBe(200);
    expect(gone.body.deleted).toBe(2);
  });

  it("has the acknowledgement it waited for in applied_version right after answering", async () => {
    const w = await startWorker(a);
    const created = await a.manager.post<RouteAnswer>(
      "/routes?wait=applied",
      routeBody({ worker_id: w.workerId }),
    );
    expect(created.status).toBe(201);
    // Acknowledgements nobody waits for are written every 500 ms; one a request waited for is
    // written within milliseconds, so a client reading the worker next sees what it waited for.
    await waitFor(
      async () =>
        (await a.admin.get<{ applied_version: number }>(`/workers/${w.workerId}`)).body
          .applied_version >= created.body.version,
      250,
      "applied_version",
    );
    // In memory only while its stream is here: once it left (and may be removed while this
    // instance does not listen), waits read the database and nothing is left behind.
    expect(a.coordinator.watch.acknowledgedHere(w.workerId!)).toBeGreaterThanOrEqual(
      created.body.version,
    );
    await w.stop();
    await waitFor(
      () => a.coordinator.watch.acknowledgedHere(w.workerId!) === undefined,
      5000,
      "its acknowledgements forgotten",
    );
  });

  it("answers 202 with X-Propagation: pending and the success body when the worker's stream is away", async () => {
    const away = await registerWorker(a.registration, portWorker({ port_range: [30000, 30099] }));
    const connected = await startWorker(a);
    const timed = async <T>(send: () => Promise<{ status: number; headers: Headers; body: T }>) => {
      const started = Date.now();
      const res = await send();
      const elapsed = Date.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(290);
      expect(elapsed).toBeLessThan(2000);
      expect(res.status).toBe(202);
      expect(res.headers.get("x-propagation")).toBe("pending");
      return res;
    };

    const created = await timed(() =>
      a.manager.post<RouteAnswer>(
        "/routes?wait=applied&timeout_ms=300",
        routeBody({ worker_id: away.worker.id }),
      ),
    );
    const stored = await a.manager.get<RouteAnswer>(`/routes/${created.body.id}`);
    expect(created.body).toEqual(stored.body);
    expect(created.headers.get("x-routing-version")).toBe(String(stored.body.version));
    expect(created.headers.get("location")).toBe(`/routes/${created.body.id}`);
    expect(created.headers.get("etag")).toBe(`"${stored.body.version}"`);

    const patched = await timed(() =>
      a.manager.patch<RouteAnswer>(`/routes/${created.body.id}?wait=applied&timeout_ms=300`, {
        open_to_public: true,
      }),
    );
    expect(patched.body).toEqual((await a.manager.get(`/routes/${created.body.id}`)).body);

    // One of the two workers has it, the other is away: still pending.
    const batch = await timed(() =>
      a.manager.post<{ version: number; items: RouteAnswer[] }>(
        "/routes/batch?wait=applied&timeout_ms=300",
        {
          routes: [
            routeBody({ session_id: "wait-away", worker_id: away.worker.id }),
            routeBody({ session_id: "wait-away", worker_id: connected.workerId }),
          ],
        },
      ),
    );
    expect(batch.body.items.map((r) => r.version)).toEqual([
      batch.body.version,
      batch.body.version,
    ]);
    expect(connected.table.get(batch.body.items[1]!.id)?.version).toBe(batch.body.version);

    const session = await timed(() =>
      a.manager.delete<{ deleted: number; version: number }>(
        "/routes?session_id=wait-away&wait=applied&timeout_ms=300",
      ),
    );
    expect(session.body).toEqual({
      deleted: 2,
      version: Number(session.headers.get("x-routing-version")),
    });

    const deleted = await timed(() =>
      a.manager.delete(`/routes/${created.body.id}?wait=applied&timeout_ms=300`),
    );
    expect(deleted.body).toBe("");
    expect((await a.manager.get(`/routes/${created.body.id}`)).status).toBe(404);
  });

  it("answers 201 when the worker's stream is on another instance than the request", async () => {
    const onB = await startWorker(b);
    const created = await a.manager.post<RouteAnswer>(
      "/routes?wait=applied&timeout_ms=10000",
      routeBody({ worker_id: onB.workerId }),
    );
    expect(onB.table.get(created.body.id)?.version).toBe(created.body.version);
    expect(created.status).toBe(201);
    expect(created.headers.get("x-propagation")).toBe("applied");

    const onA = await startWorker(a);
    const other = await b.manager.post<RouteAnswer>(
      "/routes?wait=applied&timeout_ms=10000",
      routeBody({ worker_id: onA.workerId }),
    );
    expect(onA.table.get(other.body.id)?.version).toBe(other.body.version);
    expect(other.status).toBe(201);
  });
});

describe("a worker registered again with another address", () => {
  it("has the new URLs pushed to its stream on the other instance, without a new version", async () => {
    const onB = await startWorker(b);
    const created = await a.manager.post<RouteAnswer>(
      "/routes?wait=applied&timeout_ms=10000",
      routeBody({ worker_id: onB.workerId }),
    );
    expect(created.status).toBe(201);
    const worker = await a.admin.get<Record<string, unknown>>(`/workers/${onB.workerId}`);
    const again = await a.registration.post(
      "/workers/register",
      {
        name: worker.body.name,
        advertised_host: "proxy-9.example.com",
        frontend_mode: "port",
        port_range: worker.body.port_range,
        protocols: worker.body.protocols,
      },
      { "x-worker-token": onB.workerToken! },
    );
    expect(again.status).toBe(200);
    expect(again.headers.get("x-routing-version")).toBe(String(created.body.version));
    await waitFor(
      () => onB.table.get(created.body.id)?.url.startsWith("http://proxy-9.example.com:"),
      10_000,
      "the new URL in the worker's table",
    );
    expect(onB.table.version).toBe(created.body.version);
    expect(onB.table.get(created.body.id)?.version).toBe(created.body.version);
  });
});
