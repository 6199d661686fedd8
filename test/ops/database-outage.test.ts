import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkerClient } from "../../src/client/index.js";
import { openDatabase, type Database } from "../../src/db/database.js";
import { CuttableProxy } from "../support/cuttable-proxy.js";
import { createTestDatabase, onPostgres, type TestDatabase } from "../support/database.js";
import { portWorker, registerWorker, routeBody, type RouteAnswer } from "../support/factories.js";
import { parsePrometheus, samplesOf, valueOf } from "./prometheus.js";
import {
  TOKENS,
  startInstance,
  waitFor,
  type ApiAnswer,
  type TestInstance,
} from "../support/harness.js";

/** Polls `check` (15 s deadline) until it gives a value, and returns that value. */
async function until<T>(check: () => Promise<T | undefined>, what: string): Promise<T> {
  return (await waitFor(check, 15_000, what)) as T;
}

const isProblem = (res: ApiAnswer) =>
  /^application\/problem\+json/.test(res.headers.get("content-type") ?? "");

describe.skipIf(!onPostgres())("a database outage (PostgreSQL behind a cuttable proxy)", () => {
  let testDb: TestDatabase;
  let proxy: CuttableProxy;
  let database: Database;
  let instance: TestInstance;
  /** A second instance on the database directly, which the outage does not touch. */
  let other: TestInstance | undefined;
  let client: WorkerClient | undefined;
  /** Every route whose creation was answered 2xx. */
  const acknowledged: RouteAnswer[] = [];

  const createRoute = async (tag: string) => {
    const res = await instance.manager.post<RouteAnswer>("/routes", routeBody({ labels: { tag } }));
    if (res.status >= 200 && res.status < 300) acknowledged.push(res.body);
    return res;
  };

  beforeAll(async () => {
    testDb = await createTestDatabase();
    const direct = new URL(testDb.url!);
    proxy = await CuttableProxy.start({ host: direct.hostname, port: Number(direct.port || 5432) });
    const viaProxy = new URL(direct);
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(proxy.port);
    database = await openDatabase({ url: viaProxy.toString() });
    instance = await startInstance(database);
    await registerWorker(instance.registration, portWorker());
    client = new WorkerClient({
      coordinatorUrl: instance.url,
      registrationToken: TOKENS.registration,
      registration: {
        name: `outage-client-${process.pid}`,
        advertised_host: "127.0.0.1",
        frontend_mode: "port",
        port_range: [10300, 10309],
      },
      reconnectMinMs: 20,
      reconnectMaxMs: 300,
    });
    await client.start();
  });

  afterAll(async () => {
    await client?.stop();
    await other?.stop();
    await instance?.stop();
    await database?.close();
    await proxy?.close();
    await testDb?.drop();
  });

  it("is ready and takes writes before the outage", async () => {
    expect((await instance.anonymous.get("/readyz")).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await createRoute("before")).status).toBe(201);
  });

  it("answers 503 problems while the database is unreachable, never 500 and never hangs", async () => {
    proxy.cut();
    await waitFor(
      async () => (await instance.anonymous.get("/readyz")).status === 503,
      15_000,
      "/readyz to answer 503",
    );
    expect((await instance.anonymous.get("/healthz")).status).toBe(200);

    const id = "7d6c2a1e-3b4f-4c5d-8e9f-0a1b2c3d4e5f";
    const started = Date.now();
    const write = await instance.manager.post(
      "/routes",
      routeBody({ id, labels: { tag: "during" } }),
    );
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(write.status, JSON.stringify(write.body)).toBe(503);
    expect(isProblem(write)).toBe(true);
    expect(write.body).toMatchObject({ status: 503 });
    expect(JSON.stringify(write.body)).not.toMatch(/\bat .*\.(ts|js):\d+/);
    // Reads, and the other writes, answer the same way.
    for (const res of [
      await instance.admin.get(`/routes/${acknowledged[0]!.id}`),
      await instance.admin.get("/routes"),
      await instance.admin.get("/workers"),
      await instance.admin.get("/status"),
      await instance.registration.post("/workers/register", portWorker()),
    ]) {
      expect(res.status, `${res.status} ${JSON.stringify(res.body)}`).toBe(503);
      expect(isProblem(res)).toBe(true);
    }
    // Scrapes go on, showing what this process knows: the refused requests, the reaper's failed
    // runs, its own process metrics. What only the database knows is left out, not made up.
    const m = await until(async () => {
      const res = await instance.anonymous.get<string>("/metrics");
      expect(res.status, String(res.body)).toBe(200);
      const samples = parsePrometheus(res.body);
      return samplesOf(samples, "appproxy_reaper_runs_total", { outcome: "failed" }).some(
        (r) => r.value >= 1,
      )
        ? samples
        : undefined;
    }, "a failed reaper run to be counted");
    expect(samplesOf(m, "process_cpu_user_seconds_total")).toHaveLength(1);
    expect(
      valueOf(m, "appproxy_http_request_duration_seconds_count", {
        method: "POST",
        route: "/routes",
        status: "503",
      }),
    ).toBeGreaterThanOrEqual(1);
    for (const name of [
      "appproxy_routes",
      "appproxy_routing_version",
      "appproxy_workers",
      "appproxy_workers_connected",
      "appproxy_stranded_routes",
      "appproxy_worker_lag_versions_count",
    ]) {
      expect(samplesOf(m, name), name).toEqual([]);
    }
  });

  it("recovers by itself once the database is back: ready, writes work, nothing is lost", async () => {
    proxy.restore();
    await waitFor(
      async () => (await instance.anonymous.get("/readyz")).status === 200,
      15_000,
      "/readyz to answer 200 again",
    );
    // Ready means ready: the next writes succeed, none is refused on a connection left dead.
    for (let i = 0; i < 3; i++) {
      const res = await createRoute("after");
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    }

    for (const route of acknowledged) {
      const res = await instance.admin.get<RouteAnswer>(`/routes/${route.id}`);
      expect(res.status, route.id).toBe(200);
      expect(res.body).toEqual(route);
    }
    // The write refused during the outage left nothing behind.
    expect((await instance.admin.get("/routes/7d6c2a1e-3b4f-4c5d-8e9f-0a1b2c3d4e5f")).status).toBe(
      404,
    );
    const listed = await instance.admin.get<{ items: RouteAnswer[] }>("/routes?limit=1000");
    expect(listed.body.items.map((r) => r.id).sort()).toEqual(acknowledged.map((r) => r.id).sort());

    // The worker's stream is served again: a change reaches it, from this instance and from
    // another one (which this instance hears of through the database).
    const pinned = (tag: string) => routeBody({ worker_id: client!.workerId, labels: { tag } });
    const here = await instance.manager.post<RouteAnswer>("/routes?wait=applied", pinned("after"));
    expect(here.status).toBe(201);
    expect(here.headers.get("x-propagation")).toBe("applied");
    acknowledged.push(here.body);
    other = await startInstance(await testDb.open());
    const there = await other.manager.post<RouteAnswer>("/routes?wait=applied", pinned("after"));
    expect(there.status).toBe(201);
    expect(there.headers.get("x-propagation")).toBe("applied");
    acknowledged.push(there.body);
    await waitFor(
      () => client!.table.get(there.body.id)?.version === there.body.version,
      10_000,
      "the worker to hold the route created on the other instance",
    );

    // Versions stayed gap-free across the outage.
    const versions = acknowledged.map((r) => r.version);
    expect(versions).toEqual(versions.map((_v, i) => versions[0]! + i));
  });

  it("answers writes cut off in flight 201 or 503, and keeps every 201", async () => {
    const writes = Array.from({ length: 30 }, () => createRoute("in-flight"));
    await Promise.race(writes);
    proxy.cut();
    const answers = await Promise.all(writes);
    for (const res of answers) {
      expect([201, 503], `${res.status} ${JSON.stringify(res.body)}`).toContain(res.status);
      if (res.status === 503) expect(isProblem(res)).toBe(true);
    }
    proxy.restore();
    await waitFor(
      async () => (await instance.anonymous.get("/readyz")).status === 200,
      15_000,
      "/readyz to answer 200 again",
    );
    expect((await createRoute("after")).status).toBe(201);
    for (const route of acknowledged) {
      expect((await instance.admin.get(`/routes/${route.id}`)).status, route.id).toBe(200);
    }
  });

  it("answers a change committed before the outage 202 pending while it waits, never 5xx", async () => {
    // A worker that never streams: the wait reads its acknowledgements from the database.
    const silent = await registerWorker(instance.registration, portWorker());
    const waiting = instance.manager.post<RouteAnswer>(
      "/routes?wait=applied&timeout_ms=3000",
      routeBody({ worker_id: silent.worker.id, labels: { tag: "waiting" } }),
    );
    // Committed: the other instance, on the database directly, lists it. Then the outage.
    const committed = await until(async () => {
      const res = await other!.admin.get<{ items: RouteAnswer[] }>("/routes?label=tag:waiting");
      return res.body.items[0];
    }, "the waiting route to be committed");
    proxy.cut();
    const res = await waiting;
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.headers.get("x-propagation")).toBe("pending");
    expect(res.headers.get("x-routing-version")).toBe(String(committed.version));
    expect(res.body).toEqual(committed);
    proxy.restore();
    await waitFor(
      async () => (await instance.anonymous.get("/readyz")).status === 200,
      15_000,
      "/readyz to answer 200 again",
    );
  });
});
