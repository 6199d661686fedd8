import type { Knex } from "knex";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkerClient } from "../../src/client/index.js";
import type { RouteAnswer, WorkerAnswer } from "../support/factories.js";
import { createTestDatabase, onPostgres, type TestDatabase } from "../support/database.js";
import { RawStream } from "../sync/stream-client.js";
import { startHarness, startInstance, waitFor, type TestInstance } from "../support/harness.js";
import {
  ClientPool,
  createRoute,
  getRoute,
  getStatus,
  getWorker,
  metric,
  pollFor,
  portRegistration,
  reaperRuns,
  routeInput,
  TcpProxy,
  waitForWorker,
} from "./helpers.js";

const LOST_AFTER_S = 2;

let harness: Awaited<ReturnType<typeof startHarness>>;
let clients: ClientPool;

beforeAll(async () => {
  harness = await startHarness({
    WORKER_LOST_AFTER_S: String(LOST_AFTER_S),
    HEARTBEAT_INTERVAL_S: "1",
    REAPER_CRON: "*/1 * * * * *",
  });
  clients = new ClientPool(() => harness.url);
});

afterAll(async () => {
  await clients?.stopAll();
  await harness?.close();
});

/** Routes pinned to `worker`, each asking for the `group` label so only that group can take them. */
async function pinRoutes(workerId: string, group: string, count: number): Promise<RouteAnswer[]> {
  const routes: RouteAnswer[] = [];
  for (let i = 0; i < count; i++) {
    const { route } = await createRoute(
      harness.manager,
      routeInput({ worker_id: workerId, worker_selector: { group } }),
    );
    routes.push(route);
  }
  return routes;
}

function holdsAll(client: WorkerClient, routes: RouteAnswer[]): boolean {
  return routes.every((r) => client.table.get(r.id) !== undefined);
}

/** Polls until no reaper could still be counting the worker: it is lost, or the test fails. */
function waitForLost(workerId: string, timeoutMs = 15_000) {
  return waitForWorker(harness.admin, workerId, (w) => w.status === "lost", "lost", timeoutMs);
}

describe("a worker whose stream drops and does not return", () => {
  const group = "drop";
  const registration = portRegistration("leave", { labels: { group } });
  let leaving: WorkerClient;
  let staying: WorkerClient;
  let moved: RouteAnswer[];

  it("is alive while its stream is up, then lost WORKER_LOST_AFTER_S after it ends (the cron reaper alone)", async () => {
    leaving = await clients.connect(harness.admin, registration);
    staying = await clients.connect(harness.admin, portRegistration("stay", { labels: { group } }));
    moved = await pinRoutes(leaving.workerId!, group, 3);
    await waitFor(
      () => holdsAll(leaving, moved),
      10_000,
      "the routes in the leaving worker's table",
    );

    await clients.stop(leaving);
    const gone = await waitForWorker(harness.admin, leaving.workerId!, (w) => !w.connected, "gone");
    // Not lost the moment the stream ends: alive, not connected, until the setting's time passed.
    expect(["alive", "lost"]).toContain(gone.status);
    const lost = await waitForLost(leaving.workerId!);
    expect(lost.connected).toBe(false);
    expect(lost.last_seen_at).not.toBeNull();
    expect(Date.now() - Date.parse(lost.last_seen_at!)).toBeGreaterThanOrEqual(LOST_AFTER_S * 1000);
    // Nothing but the cron schedule ran the reaper in this test.
    expect(await reaperRuns(harness.anonymous, "acted")).toBeGreaterThan(0);
  });

  it("has its routes moved to another connected worker, which holds them on the same ports", async () => {
    await waitFor(() => holdsAll(staying, moved), 10_000, "the moved routes in the other table");
    for (const before of moved) {
      const held = staying.table.get(before.id)!;
      expect(held.port).toBe(before.port);
      const after = await getRoute(harness.admin, before.id);
      expect(after.worker_id).toBe(staying.workerId);
      expect(after.port).toBe(before.port);
      expect(after.version).toBeGreaterThan(before.version);
      expect(held.version).toBe(after.version);
    }
    const lost = await getWorker(harness.admin, leaving.workerId!);
    expect(lost.route_count).toBe(0);
    expect(await metric(harness.anonymous, "appproxy_failovers_total")).toBeGreaterThanOrEqual(3);
    const head = (await getStatus(harness.admin)).routing.version;
    await waitFor(() => staying.table.version === head, 5000, "the staying worker at the head");
  });

  it("registers again as registered, is alive once its stream is up, and no longer holds the moved routes", async () => {
    const again = await harness.registration.post<WorkerAnswer>("/workers/register", registration, {
      "x-worker-token": leaving.workerToken!,
    });
    expect(again.status).toBe(200);
    expect(again.body.worker.id).toBe(leaving.workerId);
    expect(again.body.worker.status).toBe("registered");
    expect(again.body.routes).toEqual([]);
    expect((await getWorker(harness.admin, leaving.workerId!)).status).toBe("registered");

    const back = await clients.connect(harness.admin, registration, {
      workerToken: leaving.workerToken!,
    });
    expect(back.workerId).toBe(leaving.workerId);
    const head = (await getStatus(harness.admin)).routing.version;
    await waitFor(
      () => back.table.version >= head,
      5000,
      "the returning worker's table at the head",
    );
    for (const r of moved) expect(back.table.get(r.id)).toBeUndefined();
    expect(back.table.size).toBe(0);
    // The routes stay where they went.
    for (const r of moved)
      expect((await getRoute(harness.admin, r.id)).worker_id).toBe(staying.workerId);
  });
});

it("a worker that registers and never opens its stream becomes lost", async () => {
  const answer = await harness.registration.post<WorkerAnswer>(
    "/workers/register",
    portRegistration("silent"),
  );
  expect(answer.status).toBe(201);
  expect(answer.body.worker.status).toBe("registered");
  const lost = await waitForLost(answer.body.worker.id);
  expect(lost.connected).toBe(false);
  expect(Date.now() - Date.parse(lost.registered_at)).toBeGreaterThanOrEqual(LOST_AFTER_S * 1000);
});

describe("a lost worker whose routes have nowhere to go", () => {
  const group = "stranded";

  it("keeps them (stranded) while every other worker is full or ineligible, and gives them up as soon as an eligible worker registers", async () => {
    const baseline = (await getStatus(harness.admin)).routing.stranded_routes;
    const leaving = await clients.connect(
      harness.admin,
      portRegistration("strand", { labels: { group } }),
    );
    const full = await clients.connect(
      harness.admin,
      portRegistration("full", { labels: { group }, capacity: 1 }),
    );
    const draining = await clients.connect(
      harness.admin,
      portRegistration("drain", { labels: { group } }),
    );
    const tcpOnly = await clients.connect(
      harness.admin,
      portRegistration("tcp", { labels: { group }, protocols: ["tcp"] }),
    );
    await pinRoutes(full.workerId!, group, 1);
    const drained = await harness.manager.post(`/workers/${draining.workerId}/drain`);
    expect(drained.status).toBe(200);
    const stranded = await pinRoutes(leaving.workerId!, group, 2);
    await waitFor(() => holdsAll(leaving, stranded), 10_000, "the routes in the leaving table");

    await clients.stop(leaving);
    await waitForLost(leaving.workerId!);
    const status = await pollFor(
      async () => {
        const s = await getStatus(harness.admin);
        return s.routing.stranded_routes === baseline + 2 ? s : undefined;
      },
      10_000,
      "two stranded routes in /status",
    );
    expect(status.routing.stranded_routes).toBe(baseline + 2);
    expect(await metric(harness.anonymous, "appproxy_stranded_routes")).toBe(baseline + 2);

    // Several reaper runs later they are still there, and no other worker got them.
    const acted = await reaperRuns(harness.anonymous, "acted");
    await waitFor(
      async () => (await reaperRuns(harness.anonymous, "acted")) >= acted + 3,
      10_000,
      "three more reaper runs",
    );
    for (const r of stranded) {
      expect((await getRoute(harness.admin, r.id)).worker_id).toBe(leaving.workerId);
    }
    expect((await getWorker(harness.admin, leaving.workerId!)).route_count).toBe(2);
    for (const other of [full, draining, tcpOnly]) {
      for (const r of stranded) expect(other.table.get(r.id)).toBeUndefined();
    }

    const rescuer = await clients.connect(
      harness.admin,
      portRegistration("rescue", { labels: { group } }),
    );
    await waitFor(
      () => holdsAll(rescuer, stranded),
      10_000,
      "the stranded routes on the new worker",
    );
    for (const r of stranded) {
      const after = await getRoute(harness.admin, r.id);
      expect(after.worker_id).toBe(rescuer.workerId);
      expect(after.port).toBe(r.port);
      expect(rescuer.table.get(r.id)!.port).toBe(r.port);
    }
    await waitFor(
      async () => (await getStatus(harness.admin)).routing.stranded_routes === baseline,
      5000,
      "no stranded routes left",
    );
    expect(await metric(harness.anonymous, "appproxy_stranded_routes")).toBe(baseline);
  });
});

it("a worker whose stream is held by a live WorkerClient is never marked lost, across many reaper runs", async () => {
  const live = await clients.connect(
    harness.admin,
    portRegistration("live", { labels: { group: "live" } }),
  );
  const [route] = await pinRoutes(live.workerId!, "live", 1);
  const actedBefore = await reaperRuns(harness.anonymous, "acted");
  const ticks = { done: 0 };
  // Three times WORKER_LOST_AFTER_S of reaper runs, both at once (tick) and on the cron schedule.
  const until = Date.now() + 3 * LOST_AFTER_S * 1000 + 500;
  while (Date.now() < until) {
    await harness.coordinator.reaper.tick();
    ticks.done += 1;
    const w = await getWorker(harness.admin, live.workerId!);
    expect(w.status).toBe("alive");
    expect(w.connected).toBe(true);
  }
  expect(ticks.done).toBeGreaterThan(10);
  expect(await reaperRuns(harness.anonymous, "acted")).toBeGreaterThanOrEqual(actedBefore + 10);
  expect(await reaperRuns(harness.anonymous, "failed")).toBe(0);
  expect((await getRoute(harness.admin, route!.id)).worker_id).toBe(live.workerId);
  expect(live.table.get(route!.id)).toBeDefined();
});

describe("a worker cut off by the network (its socket stays open, nothing gets through)", () => {
  it("is found dead by the heartbeat, lost, its routes moved; once the network heals its client resumes without them", async () => {
    const group = "cut";
    const proxy = await TcpProxy.start(harness.url);
    try {
      const cut = await clients.connect(
        harness.admin,
        portRegistration("cut", { labels: { group } }),
        { coordinatorUrl: proxy.url, requestTimeoutMs: 1000 },
      );
      const other = await clients.connect(
        harness.admin,
        portRegistration("peer", { labels: { group } }),
      );
      const routes = await pinRoutes(cut.workerId!, group, 2);
      await waitFor(() => holdsAll(cut, routes), 10_000, "the routes in the cut worker's table");

      proxy.blackhole();
      const lost = await waitForLost(cut.workerId!, 20_000);
      expect(lost.connected).toBe(false);
      await waitFor(() => holdsAll(other, routes), 10_000, "the routes on the other worker");
      for (const r of routes) {
        const after = await getRoute(harness.admin, r.id);
        expect(after.worker_id).toBe(other.workerId);
        expect(after.port).toBe(r.port);
      }

      proxy.heal();
      await waitForWorker(
        harness.admin,
        cut.workerId!,
        (w) => w.status === "alive" && w.connected,
        "alive again",
      );
      const head = (await getStatus(harness.admin)).routing.version;
      await waitFor(() => cut.table.version >= head, 10_000, "the returning table at the head");
      for (const r of routes) expect(cut.table.get(r.id)).toBeUndefined();
      for (const r of routes)
        expect((await getRoute(harness.admin, r.id)).worker_id).toBe(other.workerId);
    } finally {
      await proxy.close();
    }
  }, 60_000);
});

describe("after a coordinator restart", () => {
  it("gives every worker WORKER_LOST_AFTER_S from the start to come back, even one whose own time had run out", async () => {
    const env = {
      WORKER_LOST_AFTER_S: String(LOST_AFTER_S),
      HEARTBEAT_INTERVAL_S: "1",
      // Only tick() runs this reaper, so the test sees every run's outcome.
      REAPER_CRON: "0 0 0 1 1 *",
    };
    let testDb: TestDatabase | undefined;
    const instances: TestInstance[] = [];
    try {
      testDb = await createTestDatabase();
      const database = await testDb.open();
      const first = await startInstance(database, env);
      instances.push(first);
      const answer = await first.registration.post<WorkerAnswer>(
        "/workers/register",
        portRegistration("restart"),
      );
      expect(answer.status).toBe(201);
      const registeredAt = Date.parse(String(answer.body.worker.registered_at));
      await first.stop();
      // The worker's own time runs out while no coordinator serves.
      await waitFor(() => Date.now() > registeredAt + LOST_AFTER_S * 1000 + 100, 10_000, "time");

      const second = await startInstance(database, env);
      instances.push(second);
      const startedAt = Date.parse((await getStatus(second.admin)).coordinator.started_at);
      const lost = await pollFor(
        async () => {
          await second.coordinator.reaper.tick();
          const w = await getWorker(second.admin, answer.body.worker.id);
          if (w.status !== "lost") {
            expect(w.status).toBe("registered");
            return undefined;
          }
          return { at: Date.now() };
        },
        15_000,
        "the worker lost after the grace",
      );
      expect(lost.at - startedAt).toBeGreaterThanOrEqual(LOST_AFTER_S * 1000);
    } finally {
      for (const instance of instances) await instance.stop();
      await testDb?.drop();
    }
  }, 60_000);
});

describe.skipIf(!onPostgres())(
  "reaper decisions taken on a worker that comes back meanwhile",
  () => {
    const env = {
      WORKER_LOST_AFTER_S: String(LOST_AFTER_S),
      WORKER_FORGET_AFTER_S: "2",
      HEARTBEAT_INTERVAL_S: "1",
      REAPER_CRON: "0 0 0 1 1 *",
    };

    interface HeldWrites {
      /** Resolves once some write (the reaper's) is seen waiting for the held row. */
      waiting(): Promise<void>;
      release(): Promise<void>;
    }

    /**
     * Runs `body` with its own database and instance. `holdWrites` makes an operator's transaction
     * hold the routing table's head row, so that a reaper run that has read the database stops at
     * its first write until `release`; pg_stat_activity shows when it waits.
     */
    async function withInstance(
      body: (instance: TestInstance, holdWrites: () => Promise<HeldWrites>) => Promise<void>,
    ): Promise<void> {
      const testDb = await createTestDatabase();
      const operator = await testDb.open();
      const instances: TestInstance[] = [];
      const blockers: Knex.Transaction[] = [];
      try {
        instances.push(await startInstance(await testDb.open(), env));
        const holdWrites = async (): Promise<HeldWrites> => {
          const blocker = await operator.knex.transaction();
          blockers.push(blocker);
          await blocker.raw("SELECT version FROM routing_state WHERE id = 1 FOR UPDATE");
          return {
            waiting: () =>
              waitFor(
                async () => {
                  const result = (await operator.knex.raw(
                    `SELECT count(*)::int AS n FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'`,
                  )) as { rows: Array<{ n: number }> };
                  return result.rows[0]!.n > 0;
                },
                10_000,
                "a reaper write waiting for the held row",
              ).then(() => undefined),
            release: async () => {
              if (!blocker.isCompleted()) await blocker.rollback();
            },
          };
        };
        await body(instances[0]!, holdWrites);
      } finally {
        for (const b of blockers) if (!b.isCompleted()) await b.rollback();
        for (const i of instances) await i.stop();
        await testDb.drop();
      }
    }

    it("does not mark lost a worker whose stream opened after the reaper read it as vanished", async () => {
      await withInstance(async (instance, holdWrites) => {
        const peers = new ClientPool(() => instance.url);
        let stream: RawStream | undefined;
        try {
          const peer = await peers.connect(instance.admin, portRegistration("peer"));
          const answer = await instance.registration.post<WorkerAnswer>(
            "/workers/register",
            portRegistration("late"),
          );
          const id = answer.body.worker.id;
          const { route } = await createRoute(instance.manager, routeInput({ worker_id: id }));
          const startedAt = Date.parse((await getStatus(instance.admin)).coordinator.started_at);
          const registeredAt = Date.parse(String(answer.body.worker.registered_at));
          await waitFor(
            () => Date.now() > Math.max(startedAt, registeredAt) + LOST_AFTER_S * 1000 + 100,
            10_000,
            "the worker's time to run out",
          );

          const held = await holdWrites();
          const run = instance.coordinator.reaper.tick();
          await held.waiting();
          // The worker's stream opens while the run that judged it vanished is under way.
          stream = await RawStream.open(instance.url, id, answer.body.token, 0);
          await stream.expect("hello");
          await waitForWorker(instance.admin, id, (w) => w.connected, "connected");
          await held.release();
          await run;

          const after = await getWorker(instance.admin, id);
          expect(after.status).toBe("alive");
          expect(after.connected).toBe(true);
          expect((await getRoute(instance.admin, route.id)).worker_id).toBe(id);
          expect(peer.table.get(route.id)).toBeUndefined();
        } finally {
          await stream?.close();
          await peers.stopAll();
        }
      });
    });

    it("does not forget a lost worker whose stream opened after the reaper read it as forgettable", async () => {
      await withInstance(async (instance, holdWrites) => {
        let stream: RawStream | undefined;
        try {
          const answer = await instance.registration.post<WorkerAnswer>(
            "/workers/register",
            portRegistration("back"),
          );
          const id = answer.body.worker.id;
          const lostSeen = await pollFor(
            async () => {
              await instance.coordinator.reaper.tick();
              return (await getWorker(instance.admin, id)).status === "lost"
                ? Date.now()
                : undefined;
            },
            15_000,
            "the worker lost",
          );
          await waitFor(() => Date.now() > lostSeen + 2000 + 100, 10_000, "forget time to pass");

          const held = await holdWrites();
          const run = instance.coordinator.reaper.tick();
          await held.waiting();
          stream = await RawStream.open(instance.url, id, answer.body.token, 0);
          await stream.expect("hello");
          await waitForWorker(instance.admin, id, (w) => w.status === "alive", "alive");
          await held.release();
          await run;

          const after = await instance.admin.get<{ status: string; connected: boolean }>(
            `/workers/${id}`,
          );
          expect(after.status).toBe(200);
          expect(after.body.status).toBe("alive");
          expect(after.body.connected).toBe(true);
          expect(stream.closeInfo).toBeUndefined();
        } finally {
          await stream?.close();
        }
      });
    });
  },
);
