/**
 * A failover of one worker holding 10,000 routes onto four others of the same 20,000-port range,
 * in this process against a fresh PostgreSQL database: the time of the reaper run that moves
 * them (one change, one version), and how many routes kept their port. Run by bench:failover
 * (`npm run bench:failover -- --wide` runs this part alone). BENCH_WIDE_ROUTES, BENCH_WIDE_RUNS.
 */
import { migrateToLatest, openDatabase } from "../src/db/database.js";
import { Reaper } from "../src/liveness/reaper.js";
import { createLogger } from "../src/logger.js";
import { RouteService } from "../src/routes/service.js";
import { routeCreateSchema, type RouteInput } from "../src/routes/schema.js";
import { Committer } from "../src/versioning/committer.js";
import { registerSchema, type Registration } from "../src/workers/schema.js";
import { WorkerService } from "../src/workers/service.js";
import { freshDatabase, nowMs, summarize } from "./support.js";

const ROUTES = Number(process.env.BENCH_WIDE_ROUTES ?? 10_000);
const RUNS = Number(process.env.BENCH_WIDE_RUNS ?? 3);
const OTHERS = 4;
const RANGE: [number, number] = [10_000, 29_999];

function validated<T>(
  schema: { validate(v: unknown): { error?: Error; value: unknown } },
  v: unknown,
): T {
  const { error, value } = schema.validate(v);
  if (error) throw error;
  return value as T;
}

const registration = (name: string): Registration =>
  validated(registerSchema, {
    name,
    advertised_host: `${name}.example.com`,
    frontend_mode: "port",
    port_range: RANGE,
  });

export interface WideFailoverRun {
  routes: number;
  ms: number;
  moved: number;
  keptPort: number;
}

export async function wideFailover(): Promise<WideFailoverRun[]> {
  const db = await freshDatabase("appproxy_bench_wide_failover");
  const database = await openDatabase({ url: db.url, poolMax: 4 });
  const runs: WideFailoverRun[] = [];
  try {
    await migrateToLatest(database.knex);
    const committer = new Committer(database.knex);
    const workers = new WorkerService(database.knex, committer);
    const routes = new RouteService(database.knex, committer);
    const reaper = new Reaper(
      database.knex,
      database.kind,
      committer,
      {
        workerLostAfterS: 86_400,
        workerForgetAfterS: 864_000,
        heartbeatIntervalS: 10,
        changelogRetention: 1_000_000,
        startedAt: new Date(),
      },
      createLogger("error"),
    );
    for (let i = 0; i < OTHERS; i++) await workers.register(registration(`other-${i}`), undefined);
    for (let run = 0; run < RUNS; run++) {
      const source = await workers.register(registration(`source-${run}`), undefined);
      const session = `wide-${run}`;
      for (let done = 0; done < ROUTES; done += 1000) {
        const inputs = Array.from({ length: Math.min(1000, ROUTES - done) }, () =>
          validated<RouteInput>(routeCreateSchema, {
            session_id: session,
            app: "jupyter",
            upstreams: [{ host: "10.0.0.5", port: 8888, weight: 1 }],
            worker_id: source.worker.id,
          }),
        );
        await routes.create(inputs, true);
      }
      const before = new Map(
        (
          (await database
            .knex("routes")
            .where({ session_id: session })
            .select("id", "port")) as Array<{
            id: string;
            port: number;
          }>
        ).map((r) => [r.id, r.port]),
      );
      // As the reaper finds it once the worker's stream is gone for WORKER_LOST_AFTER_S.
      await database
        .knex("workers")
        .where({ id: source.worker.id })
        .update({ status: "lost", lost_at: new Date() });
      const started = nowMs();
      const result = await reaper.run();
      const ms = nowMs() - started;
      const after = (await database
        .knex("routes")
        .where({ session_id: session })
        .select("id", "port", "worker_id")) as Array<{
        id: string;
        port: number;
        worker_id: string;
      }>;
      runs.push({
        routes: before.size,
        ms,
        moved: result.failedOver,
        keptPort: after.filter(
          (r) => r.worker_id !== source.worker.id && r.port === before.get(r.id),
        ).length,
      });
      // Room for the next run: its routes gone, and the lost worker with them.
      await routes.removeSession(session);
      await workers.remove(source.worker.id, true);
    }
  } finally {
    await database.close();
    await db.drop();
  }
  return runs;
}

export function wideFailoverTable(runs: WideFailoverRun[]): string {
  const s = summarize(runs.map((r) => r.ms));
  return [
    `| run | routes on the lost worker | moved | kept their port | reaper run, ms |`,
    "| ---: | ---: | ---: | ---: | ---: |",
    ...runs.map(
      (r, i) =>
        `| ${i + 1} | ${r.routes.toLocaleString("en-US")} | ${r.moved.toLocaleString("en-US")} | ${r.keptPort.toLocaleString("en-US")} | ${r.ms.toFixed(0)} |`,
    ),
    "",
    `Median ${s.p50.toFixed(0)} ms over ${runs.length} runs (${OTHERS} other workers of ${(RANGE[1] - RANGE[0] + 1).toLocaleString("en-US")} ports each).`,
  ].join("\n");
}
