/**
 * npm run bench:failover — how long a killed worker's routes take to be served elsewhere, and
 * what the reaper costs when it has nothing to do.
 *
 * 1. The coordinator (own process, fresh PostgreSQL database) with WORKER_LOST_AFTER_S=2, the
 *    reaper every second and HEARTBEAT_INTERVAL_S=1; 10 WorkerClient workers (own process) with
 *    1,000 routes each. One worker's stream is cut without a close frame and its client stopped;
 *    timed from that moment until every one of its routes is in another worker's table, and until
 *    those workers' applied_version (as recorded in the database) covers the failover version.
 *    Between runs the fleet is restored: the moved routes are deleted, the worker comes back
 *    under its name and gets 1,000 fresh routes.
 * 2. The table is filled to 100,000 routes; Reaper.run() is then timed in this process against
 *    the same database (a run that finds the reaper lock taken by the coordinator's own reaper is
 *    not counted and is tried again).
 *
 * 3. A worker holding 10,000 routes fails over onto four others (see wide-failover.ts).
 *
 * Settings: BENCH_QUICK=1 (2 runs, 20,000 routes for the reaper), BENCH_FAILOVER_RUNS,
 * BENCH_REAPER_ROUTES.
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import { openDatabase } from "../src/db/database.js";
import { Reaper } from "../src/liveness/reaper.js";
import { createLogger } from "../src/logger.js";
import { Committer } from "../src/versioning/committer.js";
import { runBenchmark } from "./cleanup.js";
import { startFleet, type WorkerRef } from "./fleet.js";
import { wideFailover, wideFailoverTable } from "./wide-failover.js";
import {
  REGISTRATION,
  headVersion,
  mutate,
  startCoordinator,
  useFreshDatabase,
  type BenchDatabase,
} from "./harness.js";
import { drive, machine, nowMs, sleep, summarize } from "./support.js";

const QUICK = process.env.BENCH_QUICK === "1";
const WORKERS = 10;
const ROUTES_PER_WORKER = 1000;
const RUNS = Number(process.env.BENCH_FAILOVER_RUNS ?? (QUICK ? 2 : 5));
const REAPER_ROUTES = Number(process.env.BENCH_REAPER_ROUTES ?? (QUICK ? 20_000 : 100_000));
const REAPER_RUNS = 20;
const LOST_AFTER_S = 2;
const HEARTBEAT_S = 1;
const PORT_RANGE: [number, number] = [10000, 29999];

function route(session: string, workerId?: string) {
  return {
    id: randomUUID(),
    session_id: session,
    app: "jupyter",
    upstreams: [{ host: "127.0.0.1", port: 8888, weight: 1 }],
    ...(workerId ? { worker_id: workerId } : {}),
  };
}

/** Gives `worker` 1,000 routes of a fresh session in one batch; returns their ids. */
async function fill(url: string, worker: WorkerRef, session: string): Promise<string[]> {
  const { body } = await mutate(url, "POST", "/routes/batch", {
    routes: Array.from({ length: ROUTES_PER_WORKER }, () => route(session, worker.id)),
  });
  return (body as { items: Array<{ id: string }> }).items.map((r) => r.id);
}

async function appliedAtLeast(db: BenchDatabase, ids: string[], version: number) {
  const { rows } = await db.sql.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM workers WHERE id = ANY($1::uuid[]) AND applied_version >= $2",
    [ids, version],
  );
  return rows[0]!.n;
}

interface RunResult {
  worker: string;
  moved: number;
  toCommitted: number;
  toTables: number;
  toRecorded: number;
}

async function main() {
  if (process.argv.includes("--wide")) {
    console.log(`\n## bench:failover --wide on ${machine()}\n`);
    console.log(wideFailoverTable(await wideFailover()));
    return;
  }
  const load = os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");
  const db = await useFreshDatabase("appproxy_bench_failover");
  const coordinator = await startCoordinator({
    DATABASE_URL: db.url,
    WORKER_LOST_AFTER_S: String(LOST_AFTER_S),
    REAPER_CRON: "* * * * * *",
    HEARTBEAT_INTERVAL_S: String(HEARTBEAT_S),
  });
  const fleet = await startFleet();
  const workers = await fleet.call<WorkerRef[]>("startClients", {
    url: coordinator.url,
    registrationToken: REGISTRATION,
    count: WORKERS,
    prefix: "failover",
    portRange: PORT_RANGE,
  });
  const routesOf = new Map<string, { session: string; ids: string[] }>();
  let generation = 0;
  for (const w of workers) {
    const session = `fo-${w.name}-g${generation}`;
    routesOf.set(w.name, { session, ids: await fill(coordinator.url, w, session) });
  }
  await fleet.call("waitVersion", { version: await headVersion(db) });

  const runs: RunResult[] = [];
  for (let run = 0; run < RUNS; run++) {
    const victim = workers[run % WORKERS]!;
    const { ids } = routesOf.get(victim.name)!;
    const killed = await fleet.call<{ at: number; wall: number }>("kill", { name: victim.name });
    const moved = await fleet.call<{ at: number; version: number; holders: string[] }>(
      "awaitRoutes",
      { ids, exclude: victim.name, timeoutMs: 60_000 },
    );
    const deadline = Date.now() + 30_000;
    while ((await appliedAtLeast(db, moved.holders, moved.version)) < moved.holders.length) {
      if (Date.now() > deadline) throw new Error("applied_version did not reach the failover");
      await sleep(5);
    }
    const recordedAt = nowMs();
    const { rows } = await db.sql.query<{ committed_at: Date; kind: string }>(
      "SELECT committed_at, kind FROM changes WHERE version = $1",
      [moved.version],
    );
    runs.push({
      worker: victim.name,
      moved: ids.length,
      toCommitted: (rows[0]!.committed_at.getTime() - killed.wall) / 1000,
      toTables: (moved.at - killed.at) / 1000,
      toRecorded: (recordedAt - killed.at) / 1000,
    });
    console.error(
      `run ${run + 1}: ${victim.name}: ${ids.length} routes on other workers after ${runs.at(-1)!.toTables.toFixed(3)} s (${rows[0]!.kind})`,
    );

    // Restore: the moved routes go, the worker comes back with 1,000 fresh ones.
    generation += 1;
    await mutate(
      coordinator.url,
      "DELETE",
      `/routes?session_id=${encodeURIComponent(routesOf.get(victim.name)!.session)}`,
    );
    const back = await fleet.call<WorkerRef>("restore", {
      name: victim.name,
      url: coordinator.url,
      registrationToken: REGISTRATION,
    });
    const session = `fo-${victim.name}-g${generation}`;
    routesOf.set(victim.name, { session, ids: await fill(coordinator.url, back, session) });
    workers[run % WORKERS] = back;
    await fleet.call("waitVersion", { version: await headVersion(db) });
  }

  // The reaper with a large table and nothing to do.
  const { rows: counted } = await db.sql.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM routes",
  );
  const missing = Math.max(0, REAPER_ROUTES - counted[0]!.n);
  const batches = Math.ceil(missing / 1000);
  console.error(`filling the table to ${REAPER_ROUTES.toLocaleString("en-US")} routes…`);
  await drive(batches, 2, async (b) => {
    const size = Math.min(1000, missing - b * 1000);
    await mutate(coordinator.url, "POST", "/routes/batch", {
      routes: Array.from({ length: size }, () => route(`reaper-fill-${b}`)),
    });
  });
  await fleet.call("waitVersion", { version: await headVersion(db) });
  const { rows: total } = await db.sql.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM routes",
  );

  const database = await openDatabase({ url: db.url, poolMax: 4 });
  const reaperTimes: number[] = [];
  let skipped = 0;
  let acted = 0;
  try {
    const reaper = new Reaper(
      database.knex,
      database.kind,
      new Committer(database.knex),
      {
        workerLostAfterS: LOST_AFTER_S,
        workerForgetAfterS: 86400,
        heartbeatIntervalS: HEARTBEAT_S,
        changelogRetention: 100_000,
        startedAt: new Date(),
      },
      createLogger("error"),
    );
    while (reaperTimes.length < REAPER_RUNS) {
      const started = nowMs();
      const result = await reaper.run();
      const took = nowMs() - started;
      if (!result.acted) {
        skipped += 1;
      } else {
        reaperTimes.push(took);
        const idle =
          result.lost.length === 0 &&
          result.failedOver === 0 &&
          result.forgotten.length === 0 &&
          result.expired === 0 &&
          result.trimmedThrough === undefined;
        if (!idle) acted += 1;
      }
      await sleep(50);
    }
  } finally {
    await database.close();
  }
  await fleet.stop();
  await coordinator.stop();
  await db.drop();

  const fmt = (s: number) => s.toFixed(3);
  console.log(`\n## bench:failover on ${machine()}`);
  console.log(
    `\nPostgreSQL at 127.0.0.1:5432; WORKER_LOST_AFTER_S=${LOST_AFTER_S}, REAPER_CRON every second, HEARTBEAT_INTERVAL_S=${HEARTBEAT_S}; ${WORKERS} workers × ${ROUTES_PER_WORKER.toLocaleString("en-US")} routes; load average at start ${load}.\n`,
  );
  console.log(
    "| run | killed worker | routes moved | kill → failover transaction began (changes.committed_at), s | kill → all in other tables, s | kill → applied_version recorded, s | recorded − WORKER_LOST_AFTER_S, s |",
  );
  console.log("| ---: | --- | ---: | ---: | ---: | ---: | ---: |");
  runs.forEach((r, i) =>
    console.log(
      `| ${i + 1} | ${r.worker} | ${r.moved} | ${fmt(r.toCommitted)} | ${fmt(r.toTables)} | ${fmt(r.toRecorded)} | ${fmt(r.toRecorded - LOST_AFTER_S)} |`,
    ),
  );
  const over = summarize(runs.map((r) => r.toRecorded - LOST_AFTER_S));
  const tables = summarize(runs.map((r) => r.toTables - LOST_AFTER_S));
  console.log(
    `\nBeyond WORKER_LOST_AFTER_S, over ${runs.length} runs: until applied_version recorded p50 ${fmt(over.p50)} s, max ${fmt(over.max)} s; until in the tables p50 ${fmt(tables.p50)} s, max ${fmt(tables.max)} s.`,
  );
  const reap = summarize(reaperTimes);
  console.log(
    `\n| Reaper.run() with ${total[0]!.n.toLocaleString("en-US")} routes, nothing to do | p50 ms | max ms | runs |`,
  );
  console.log("| --- | ---: | ---: | ---: |");
  console.log(
    `| in-process against the same database, while the coordinator runs | ${reap.p50.toFixed(1)} | ${reap.max.toFixed(1)} | ${reap.n} |`,
  );
  console.log(
    `\n${skipped} further runs found the lock held by the coordinator's own reaper and were not counted; ${acted} counted runs did find something to do.`,
  );
  console.log("\nA worker holding 10,000 routes fails over, keeping their ports:\n");
  console.log(wideFailoverTable(await wideFailover()));
}

await runBenchmark(main);
