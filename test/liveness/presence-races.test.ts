import { randomInt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { openDatabase } from "../../src/db/database.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { registerWorker, portWorker, type WorkerAnswer } from "../support/factories.js";
import { startInstance, waitFor, type TestInstance } from "../support/harness.js";
import { RawStream, streamUrl } from "../sync/stream-client.js";
import { getWorker, metric, routeInput, TcpProxy, type WorkerView } from "./helpers.js";

const LOST_AFTER_S = 1;
const HEARTBEAT_S = 20;
const ENV = {
  WORKER_LOST_AFTER_S: String(LOST_AFTER_S),
  // Three heartbeats (60 s) is when a connected worker whose instance stopped reporting it is
  // lost: far beyond these tests' deadlines, so a worker lost in time was lost for no stream.
  HEARTBEAT_INTERVAL_S: String(HEARTBEAT_S),
  // The tests run the reapers themselves (tick()), at the moments the races need.
  REAPER_CRON: "0 0 0 1 1 *",
};

/**
 * Instance B's database is this far away (each way) on PostgreSQL: its statements take turns with
 * A's as they do between instances in different places, rather than in the order they were sent.
 */
const FAR_DB_DELAY_MS = 10;

let testDb: TestDatabase;
let farDb: TcpProxy | undefined;
let a: TestInstance;
let b: TestInstance;
const open = new Set<RawStream>();

beforeAll(async () => {
  testDb = await createTestDatabase();
  a = await startInstance(await testDb.open(), ENV);
  if (testDb.url) {
    farDb = await TcpProxy.start(testDb.url, { delayMs: FAR_DB_DELAY_MS });
    b = await startInstance(await openDatabase({ url: farDb.url }), ENV);
  } else {
    // The embedded database is one PGlite in this process, which both instances share.
    b = await startInstance(await testDb.open(), ENV);
  }
});

afterAll(async () => {
  await Promise.all([...open].map((s) => s.close()));
  await a?.stop();
  await b?.stop();
  await farDb?.close();
  await testDb?.drop();
});

async function register(count: number): Promise<WorkerAnswer[]> {
  return Promise.all(
    Array.from({ length: count }, () => registerWorker(a.registration, portWorker())),
  );
}

/** A stream that has received its hello and its first table, as a worker's would. */
async function openStream(instance: TestInstance, worker: WorkerAnswer): Promise<RawStream> {
  const stream = await RawStream.open(instance.url, worker.worker.id, worker.token);
  open.add(stream);
  void stream.closed.then(() => open.delete(stream));
  await stream.expect("hello");
  const first = await stream.next();
  expect(["snapshot", "diff"]).toContain(first.type);
  return stream;
}

/** Every worker's view, once `check` holds for all of them; fails at the deadline naming them. */
async function waitForAll(
  workers: WorkerAnswer[],
  check: (w: WorkerView) => boolean,
  what: string,
  timeoutMs: number,
): Promise<void> {
  let wrong: WorkerView[] = [];
  try {
    await waitFor(
      async () => {
        const views = await Promise.all(workers.map((w) => getWorker(a.admin, w.worker.id)));
        wrong = views.filter((v) => !check(v));
        return wrong.length === 0;
      },
      timeoutMs,
      what,
    );
  } catch (error) {
    const sample = wrong.slice(0, 5).map((w) => `${w.id}: ${w.status}, connected ${w.connected}`);
    throw new Error(`${wrong.length} workers not ${what}: ${sample.join("; ")}`, { cause: error });
  }
}

/** The ids among `ids` that GET /workers lists as lost. */
async function lostAmong(ids: Set<string>): Promise<Set<string>> {
  const res = await a.admin.get<{ items: WorkerView[] }>("/workers?status=lost");
  expect(res.status).toBe(200);
  return new Set(res.body.items.map((w) => w.id).filter((id) => ids.has(id)));
}

describe("workers whose streams drop and come back while the reaper runs", () => {
  it("are all alive and connected after every run, and take pinned routes", async () => {
    const WORKERS = 8;
    const CYCLES = 2;
    const workers = await register(WORKERS);
    const ids = new Set(workers.map((w) => w.worker.id));
    let streams = await Promise.all(workers.map((w) => openStream(a, w)));
    await waitForAll(workers, (w) => w.status === "alive" && w.connected, "alive", 10_000);

    for (let cycle = 0; cycle < CYCLES; cycle++) {
      // One after the other: the reaper takes vanished workers longest gone first, in this order.
      for (const stream of streams) await stream.close();
      const dropped = Date.now();
      await waitForAll(workers, (w) => !w.connected, "disconnected", 10_000);
      // Past WORKER_LOST_AFTER_S since every stream ended, so that the reaper's run judges them.
      await waitFor(() => Date.now() > dropped + LOST_AFTER_S * 1000 + 200, 5000, "the clock");

      // Each worker comes back about when the run reaches it: once the one before it was marked
      // lost, after about the time the run takes to read it (four to eight round trips to B's
      // far database), so that some land between the run's read of a worker and its write.
      let running = true;
      const run = b.coordinator.reaper.tick().finally(() => (running = false));
      const back: Array<Promise<RawStream>> = [];
      const reconnect = (upTo: number) => {
        while (back.length <= Math.min(upTo, workers.length - 1)) {
          const worker = workers[back.length]!;
          const delayMs = randomInt(8, 16) * FAR_DB_DELAY_MS;
          back.push(new Promise((r) => setTimeout(r, delayMs)).then(() => openStream(a, worker)));
        }
      };
      reconnect(0);
      while (running && back.length < workers.length) {
        const lost = await lostAmong(ids);
        const reached = workers.reduce((last, w, i) => (lost.has(w.worker.id) ? i : last), -1);
        reconnect(reached + 1);
      }
      await run;
      reconnect(workers.length);
      streams = await Promise.all(back);
      // Every worker holds an open stream again: whatever the run did meanwhile, none is left
      // lost or disconnected.
      await waitForAll(
        workers,
        (w) => w.status === "alive" && w.connected,
        `alive and connected after run ${cycle + 1}`,
        5000,
      );
    }

    // Nor by a later run, and each can be given routes.
    await b.coordinator.reaper.tick();
    await waitForAll(workers, (w) => w.status === "alive" && w.connected, "still alive", 5000);
    for (const w of workers) {
      const res = await a.manager.post("/routes", routeInput({ worker_id: w.worker.id }));
      expect(res.status, `pinned POST /routes on ${w.worker.id}: ${JSON.stringify(res.body)}`).toBe(
        201,
      );
    }
    await Promise.all(streams.map((s) => s.close()));
  });
});

describe("streams cut as soon as they open", () => {
  it("leave their workers disconnected, and lost after WORKER_LOST_AFTER_S", async () => {
    const WORKERS = 10;
    const workers = await register(WORKERS);
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            // On the instance with the far database, where a write takes longest to land.
            const socket = new WebSocket(streamUrl(b.url, w.worker.id), {
              headers: { authorization: `Bearer ${w.token}` },
            });
            socket.on("open", () => socket.terminate());
            socket.on("close", () => resolve());
            socket.on("error", () => undefined);
            socket.on("unexpected-response", (_req, res) =>
              reject(new Error(`stream refused: ${res.statusCode}`)),
            );
          }),
      ),
    );
    // Disconnected, and lost once WORKER_LOST_AFTER_S passed with no stream, long before three
    // heartbeats (60 s), with a reaper run every second as by default.
    const reaping = setInterval(() => void a.coordinator.reaper.tick(), 1000);
    try {
      await waitForAll(workers, (w) => w.status === "lost" && !w.connected, "lost", 15_000);
    } finally {
      clearInterval(reaping);
    }
    // /status and the metrics say the same.
    const ids = new Set(workers.map((w) => w.worker.id));
    const status = await a.admin.get<{ workers_detail: Array<{ id: string; connected: boolean }> }>(
      "/status",
    );
    const mine = status.body.workers_detail.filter((d) => ids.has(d.id));
    expect(mine).toHaveLength(WORKERS);
    expect(mine.filter((d) => d.connected)).toEqual([]);
    await waitFor(
      async () => (await metric(a.admin, "appproxy_workers_connected")) === 0,
      5000,
      "appproxy_workers_connected to be 0",
    );
  });
});
