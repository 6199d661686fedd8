import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.js";
import { createTestDatabase, onPostgres, type TestDatabase } from "../support/database.js";
import { startInstance, type TestInstance } from "../support/harness.js";
import {
  ClientPool,
  createRoute,
  getRoute,
  getStatus,
  getWorker,
  pollFor,
  portRegistration,
  reaperRuns,
  routeInput,
  waitForWorker,
} from "./helpers.js";

const LOST_AFTER_S = 2;
const ENV = {
  WORKER_LOST_AFTER_S: String(LOST_AFTER_S),
  HEARTBEAT_INTERVAL_S: "1",
  // Only tick() runs the reapers here: every run is one the test started and counts.
  REAPER_CRON: "0 0 0 1 1 *",
};

let testDb: TestDatabase;
let databases: Database[] = [];
let a: TestInstance;
let b: TestInstance;
let clients: ClientPool;

beforeAll(async () => {
  testDb = await createTestDatabase();
  // On PostgreSQL each open() is a pool of its own; on the embedded database both share one PGlite.
  databases = [await testDb.open(), await testDb.open()];
  a = await startInstance(databases[0]!, ENV);
  b = await startInstance(databases[1]!, ENV);
  clients = new ClientPool(() => a.url);
});

afterAll(async () => {
  await clients?.stopAll();
  await a?.stop();
  await b?.stop();
  await testDb?.drop();
});

/** The reaper outcomes counted so far on both instances. */
async function outcomes() {
  const count = async (i: TestInstance) => ({
    acted: await reaperRuns(i.anonymous, "acted"),
    skipped: await reaperRuns(i.anonymous, "skipped"),
    failed: await reaperRuns(i.anonymous, "failed"),
  });
  return { a: await count(a), b: await count(b) };
}

describe("a worker connected to instance A", () => {
  it("is never marked lost by instance B's reaper, run many times over more than WORKER_LOST_AFTER_S", async () => {
    const client = await clients.connect(a.admin, portRegistration("on-a"));
    const { route } = await createRoute(a.manager, routeInput({ worker_id: client.workerId }));
    const instanceA = (await getStatus(a.admin)).coordinator.instance_id;
    const startedB = Date.parse((await getStatus(b.admin)).coordinator.started_at);
    // Past B's own start-up grace too, so that B's reaper really judges the worker.
    const until = Math.max(Date.now(), startedB) + 3 * LOST_AFTER_S * 1000;
    const before = await outcomes();
    let runs = 0;
    while (Date.now() < until) {
      await b.coordinator.reaper.tick();
      runs += 1;
      const seenByB = await getWorker(b.admin, client.workerId!);
      expect(seenByB.status).toBe("alive");
      expect(seenByB.connected).toBe(true);
    }
    const after = await outcomes();
    expect(runs).toBeGreaterThan(10);
    // B's reaper did run (nothing else held the lock) and never failed.
    expect(after.b.acted - before.b.acted).toBe(runs);
    expect(after.b.failed).toBe(0);
    const detail = (await getStatus(b.admin)) as unknown as {
      workers_detail: Array<{ id: string; instance_id: string | null }>;
    };
    expect(detail.workers_detail.find((w) => w.id === client.workerId)?.instance_id).toBe(
      instanceA,
    );
    expect((await getRoute(b.admin, route.id)).worker_id).toBe(client.workerId);
    expect(client.table.get(route.id)).toBeDefined();
  });

  it("is marked lost by instance B's reaper once its stream on A has ended for WORKER_LOST_AFTER_S", async () => {
    const client = await clients.connect(a.admin, portRegistration("leaves-a"));
    await clients.stop(client);
    await waitForWorker(b.admin, client.workerId!, (w) => !w.connected, "disconnected");
    const lost = await pollFor(
      async () => {
        await b.coordinator.reaper.tick();
        const w = await getWorker(b.admin, client.workerId!);
        return w.status === "lost" ? w : undefined;
      },
      15_000,
      "B's reaper to mark the worker lost",
    );
    expect(Date.now() - Date.parse(lost.last_seen_at!)).toBeGreaterThanOrEqual(LOST_AFTER_S * 1000);
  });
});

describe.skipIf(!onPostgres())("the reaper lock on PostgreSQL", () => {
  it("lets one instance act per run when both run at once: every run is counted once, at least one acts", async () => {
    const ROUNDS = 40;
    let before = await outcomes();
    let skipped = 0;
    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all([a.coordinator.reaper.tick(), b.coordinator.reaper.tick()]);
      const after = await outcomes();
      const acted = after.a.acted - before.a.acted + (after.b.acted - before.b.acted);
      const skips = after.a.skipped - before.a.skipped + (after.b.skipped - before.b.skipped);
      expect(after.a.failed + after.b.failed).toBe(0);
      // Two runs were asked for and both are accounted for; the lock is never held by neither.
      expect(acted + skips).toBe(2);
      expect(acted).toBeGreaterThanOrEqual(1);
      skipped += skips;
      before = after;
    }
    expect(skipped).toBeGreaterThan(0);
  });

  it("ends a run with nothing to do without waiting for the routing lock", async () => {
    // Nothing expired, lost or vanished and a short log: the run reads, acts on nothing, and a
    // transaction holding the routing table's head row does not hold it up.
    const operator = await testDb.open();
    const blocker = await operator.knex.transaction();
    try {
      await blocker.raw("SELECT version FROM routing_state WHERE id = 1 FOR UPDATE");
      const before = await outcomes();
      let ended = false;
      const run = a.coordinator.reaper.tick().finally(() => (ended = true));
      await pollFor(async () => ended || undefined, 10_000, "the run to end");
      await run;
      expect((await outcomes()).a.acted - before.a.acted).toBe(1);
    } finally {
      await blocker.rollback();
      await operator.close();
    }
  });

  it("while one instance's run is provably under way, every run of the other skips", async () => {
    // An operator's transaction holds the routing table's head row: a reaper run that got the
    // lock stops at its first write (removing an expired route) and stays under way until the
    // transaction ends.
    const operator = await testDb.open();
    const client = await clients.connect(a.admin, portRegistration("under-way"));
    const { route } = await createRoute(a.manager, routeInput({ worker_id: client.workerId }));
    await operator
      .knex("routes")
      .where({ id: route.id })
      .update({ expires_at: new Date(Date.now() - 1000) });
    const blocker = await operator.knex.transaction();
    const settled = { a: false, b: false };
    let runA: Promise<void> | undefined;
    let runB: Promise<void> | undefined;
    try {
      await blocker.raw("SELECT version FROM routing_state WHERE id = 1 FOR UPDATE");
      const before = await outcomes();
      runA = a.coordinator.reaper.tick().finally(() => (settled.a = true));
      runB = b.coordinator.reaper.tick().finally(() => (settled.b = true));
      // One of them takes the lock and blocks; the other is refused it.
      const refused = await pollFor(
        async () => {
          const now = await outcomes();
          if (now.a.skipped > before.a.skipped) return "a" as const;
          if (now.b.skipped > before.b.skipped) return "b" as const;
          return undefined;
        },
        10_000,
        "one of the two runs to be skipped",
      );
      const other = refused === "a" ? a : b;
      const holderKey = refused === "a" ? "b" : "a";
      expect(settled[holderKey]).toBe(false);

      for (let i = 0; i < 5; i++) await other.coordinator.reaper.tick();
      const during = await outcomes();
      expect(during[refused].skipped - before[refused].skipped).toBe(6);
      expect(during.a.acted - before.a.acted + (during.b.acted - before.b.acted)).toBe(0);
      expect(settled[holderKey]).toBe(false);

      await blocker.rollback();
      await (holderKey === "a" ? runA : runB);
      const released = await outcomes();
      expect(released[holderKey].acted - before[holderKey].acted).toBe(1);
      expect(await operator.knex("routes").where({ id: route.id }).first()).toBeUndefined();
      expect(released[refused].acted - before[refused].acted).toBe(0);
      // The lock ends with the run: the other instance acts at its next run.
      await other.coordinator.reaper.tick();
      expect((await outcomes())[refused].acted - before[refused].acted).toBe(1);
    } finally {
      if (!blocker.isCompleted()) await blocker.rollback();
      await Promise.allSettled([runA, runB]);
      await operator.close();
    }
  });
});
