import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkerClient } from "../../src/client/index.js";
import type { Database } from "../../src/db/database.js";
import { createTestDatabase, onPostgres, type TestDatabase } from "../support/database.js";
import { TOKENS, startInstance, waitFor, type TestInstance } from "../support/harness.js";
import { routeBody, type RouteAnswer } from "../support/factories.js";

const LISTEN_APPLICATION = "appproxy-coordinator-listen";

describe.skipIf(!onPostgres())("a dropped LISTEN connection", () => {
  let testDb: TestDatabase;
  let admin: Database;
  let a: TestInstance;
  let b: TestInstance;
  const clients: WorkerClient[] = [];

  /** The backends LISTENing for the coordinator instances in this test's database. */
  async function listenPids(): Promise<number[]> {
    const res = await admin.knex.raw<{ rows: Array<{ pid: number }> }>(
      "SELECT pid FROM pg_stat_activity WHERE application_name = ? AND datname = current_database()",
      [LISTEN_APPLICATION],
    );
    return res.rows.map((r) => r.pid);
  }

  /**
   * Ends both instances' LISTEN connections from PostgreSQL's side and waits until they are gone;
   * answers a check telling when both instances listen again.
   */
  async function dropListeners(): Promise<() => Promise<boolean>> {
    const old = await listenPids();
    expect(old).toHaveLength(2);
    const terminated = await admin.knex.raw<{ rows: Array<{ ok: boolean }> }>(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
       WHERE application_name = ? AND datname = current_database()`,
      [LISTEN_APPLICATION],
    );
    expect(terminated.rows.map((r) => r.ok)).toEqual([true, true]);
    await waitFor(
      async () => !(await listenPids()).some((pid) => old.includes(pid)),
      5000,
      "the LISTEN backends to end",
    );
    return async () => {
      const pids = await listenPids();
      return pids.length === 2 && !pids.some((pid) => old.includes(pid));
    };
  }

  /** A worker process whose stream is on instance B, synced. */
  async function startWorker(name: string): Promise<WorkerClient> {
    const worker = new WorkerClient({
      coordinatorUrl: b.url,
      registrationToken: TOKENS.registration,
      registration: {
        name: `${name}-${process.pid}`,
        advertised_host: "127.0.0.1",
        frontend_mode: "port",
        port_range: [20000, 20999],
      },
      reconnectMinMs: 20,
      reconnectMaxMs: 200,
    });
    clients.push(worker);
    let synced = false;
    worker.on("synced", () => (synced = true));
    await worker.start();
    await waitFor(() => synced, 10_000, "the worker's first sync");
    return worker;
  }

  beforeAll(async () => {
    testDb = await createTestDatabase();
    admin = await testDb.open();
    a = await startInstance(await testDb.open());
    b = await startInstance(await testDb.open());
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await a?.stop();
    await b?.stop();
    await testDb?.drop();
  });

  it("still brings changes committed on instance A to the worker on instance B", async () => {
    const client = await startWorker("listen-drop");
    const before = await a.manager.post<RouteAnswer>(
      "/routes",
      routeBody({ worker_id: client.workerId }),
    );
    expect(before.status).toBe(201);
    await waitFor(
      () => client.table.get(before.body.id)?.version === before.body.version,
      5000,
      "first change",
    );

    const relistened = await dropListeners();
    // Changes commit through A until both instances listen again: at least the first one
    // committed while B could hear no notification.
    const created: RouteAnswer[] = [];
    do {
      const res = await a.manager.post<RouteAnswer>(
        "/routes",
        routeBody({ worker_id: client.workerId }),
      );
      expect(res.status).toBe(201);
      created.push(res.body);
    } while (!(await relistened()) && created.length < 500);
    const patched = await a.manager.patch<RouteAnswer>(`/routes/${before.body.id}`, {
      open_to_public: true,
    });
    expect(patched.status).toBe(200);

    // Delayed, not lost: the worker's table reaches every one of them, and acknowledges them.
    await waitFor(
      () =>
        created.every((r) => client.table.get(r.id)?.version === r.version) &&
        client.table.get(before.body.id)?.version === patched.body.version,
      10_000,
      "the changes made while B was not listening",
    );
    await waitFor(
      async () =>
        (await a.admin.get<{ applied_version: number }>(`/workers/${client.workerId}`)).body
          .applied_version === patched.body.version,
      10_000,
      "the acknowledgement",
    );

    // Both instances listen again, and a change through A arrives as before.
    await waitFor(relistened, 15_000, "LISTEN reconnected");
    const after = await a.manager.post<RouteAnswer>(
      "/routes",
      routeBody({ worker_id: client.workerId }),
    );
    await waitFor(
      () => client.table.get(after.body.id)?.version === after.body.version,
      5000,
      "a change after",
    );
    expect(client.table.version).toBe(after.body.version);
  });

  it("closes the stream of a worker removed through A while B was not listening", async () => {
    const removed = await startWorker("listen-drop-removed");
    const id = removed.workerId!;
    const codes: number[] = [];
    removed.on("disconnected", (e) => codes.push(e.code));
    await dropListeners();
    expect((await a.manager.delete(`/workers/${id}`)).status).toBe(204);

    // The worker learns it was removed (4404) and registers again, under a new identity.
    await waitFor(() => removed.workerId !== id, 15_000, "the removed worker to register again");
    expect(codes[0]).toBe(4404);
    expect((await a.admin.get(`/workers/${id}`)).status).toBe(404);
    await waitFor(
      async () =>
        (await a.admin.get<{ connected: boolean }>(`/workers/${removed.workerId}`)).body.connected,
      5000,
      "the new identity connected",
    );
  });
});
