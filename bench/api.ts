/**
 * npm run bench:api — route creation over HTTP against the local PostgreSQL, next to what the
 * same PostgreSQL does for the bare transaction. Prints a Markdown table for docs/benchmarks.md.
 */
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import knexFactory from "knex";
import {
  BENCH_TOKENS,
  drive,
  freshDatabase,
  machine,
  request,
  startCoordinatorProcess,
} from "./support.js";

const M = BENCH_TOKENS.MANAGER_TOKENS;
const R = BENCH_TOKENS.REGISTRATION_TOKENS;
const WORKERS = 10;

function route(i: number) {
  return {
    session_id: `bench-${i}`,
    app: "jupyter",
    upstreams: [{ host: "10.0.0.5", port: 8888, weight: 1 }],
  };
}

async function createSingles(url: string, total: number, concurrency: number) {
  let failures = 0;
  const r = await drive(total, concurrency, async (i) => {
    const res = await request(url, "POST", "/routes", M, route(i));
    if (res.status !== 201 && failures++ === 0) console.error(res.status, res.body);
  });
  if (failures) throw new Error(`${failures} creates failed`);
  return r.perSecond;
}

async function createBatches(url: string, batches: number, size: number, concurrency: number) {
  let failures = 0;
  const r = await drive(batches, concurrency, async (b) => {
    const res = await request(url, "POST", "/routes/batch", M, {
      routes: Array.from({ length: size }, (_, i) => route(b * size + i)),
    });
    if (res.status !== 201 && failures++ === 0) console.error(res.status, res.body);
  });
  if (failures) throw new Error(`${failures} batches failed`);
  return (batches * size) / r.seconds;
}

/** The bare one-change-per-transaction rate: counter row update plus two inserts. */
async function bareTransactions(dbUrl: string, total: number, concurrency: number) {
  const knex = knexFactory({ client: "pg", connection: dbUrl, pool: { min: 0, max: concurrency } });
  await knex.raw(`CREATE TABLE IF NOT EXISTS bare_counter (id int primary key, version bigint);
    INSERT INTO bare_counter VALUES (1, 0) ON CONFLICT DO NOTHING;
    CREATE TABLE IF NOT EXISTS bare_routes (id uuid primary key, version bigint, body jsonb);
    CREATE TABLE IF NOT EXISTS bare_log (version bigint, route_id uuid, body jsonb, primary key (version, route_id));`);
  const r = await drive(total, concurrency, async (i) => {
    await knex.transaction(async (tx) => {
      const [row] = (await tx("bare_counter")
        .where({ id: 1 })
        .increment("version", 1)
        .returning("version")) as Array<{ version: string }>;
      const id = randomUUID();
      const body = JSON.stringify(route(i));
      await tx("bare_routes").insert({ id, version: row!.version, body });
      await tx("bare_log").insert({ version: row!.version, route_id: id, body });
    });
  });
  await knex.destroy();
  return r.perSecond;
}

/**
 * The same bare transaction through pgbench, PostgreSQL's own C client: what the database does
 * without Node in the way. "skipped" where pgbench is not installed.
 */
function pgbench(dbUrl: string, clients: number): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "bench-pgbench-"));
  try {
    const script = path.join(dir, "bare.sql");
    writeFileSync(
      script,
      `BEGIN;
UPDATE bare_counter SET version = version + 1 WHERE id = 1;
INSERT INTO bare_routes VALUES (gen_random_uuid(), 0, '{}');
INSERT INTO bare_log VALUES (0, gen_random_uuid(), '{}');
END;
`,
    );
    const run = spawnSync(
      "pgbench",
      [
        "-n",
        "-c",
        String(clients),
        "-j",
        String(Math.min(clients, 2)),
        "-T",
        "5",
        "-f",
        script,
        dbUrl,
      ],
      { encoding: "utf8" },
    );
    const tps = /tps = ([0-9.]+)/.exec(run.stdout ?? "");
    return tps ? Math.round(Number(tps[1])).toLocaleString("en-US") : "skipped";
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const db = await freshDatabase("appproxy_bench_api");
  const coordinator = await startCoordinatorProcess({
    DATABASE_URL: db.url,
    // No worker streams here: keep the registered workers eligible for the whole run.
    WORKER_LOST_AFTER_S: "86400",
  });
  const rows: Array<[string, string]> = [];
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  try {
    for (let w = 0; w < WORKERS; w++) {
      const res = await request(coordinator.url, "POST", "/workers/register", R, {
        name: `bench-w${w}`,
        advertised_host: `10.9.0.${w + 1}`,
        frontend_mode: "port",
        port_range: [10000, 60000],
      });
      if (res.status !== 201) throw new Error(`register: ${res.status} ${res.body}`);
    }
    await createSingles(coordinator.url, 300, 16); // warm-up
    rows.push([
      "single creates, concurrency 1 (~100 routes in table)",
      fmt(await createSingles(coordinator.url, 1000, 1)),
    ]);
    const c16small = await createSingles(coordinator.url, 5000, 16);
    rows.push(["single creates, concurrency 16 (~1,000 routes in table)", fmt(c16small)]);
    rows.push([
      "batches of 100, concurrency 1",
      fmt(await createBatches(coordinator.url, 100, 100, 1)),
    ]);
    rows.push([
      "batches of 100, concurrency 4",
      fmt(await createBatches(coordinator.url, 400, 100, 4)),
    ]);
    // Fill to about 100,000 routes, then measure single creates again.
    await createBatches(coordinator.url, 800, 100, 4);
    const c16large = await createSingles(coordinator.url, 5000, 16);
    rows.push(["single creates, concurrency 16 (~100,000 routes in table)", fmt(c16large)]);
    rows.push(["  ratio large/small table", (c16large / c16small).toFixed(2)]);
    rows.push([
      "bare transaction (knex loop), concurrency 1",
      fmt(await bareTransactions(db.url, 2000, 1)),
    ]);
    rows.push([
      "bare transaction (knex loop), concurrency 16",
      fmt(await bareTransactions(db.url, 10000, 16)),
    ]);
    for (const clients of [1, 16]) {
      rows.push([
        `bare transaction (pgbench, C client), concurrency ${clients}`,
        pgbench(db.url, clients),
      ]);
    }
  } finally {
    await coordinator.stop();
    await db.drop();
  }
  console.log(`\nbench:api on ${machine()}, PostgreSQL at 127.0.0.1:5432\n`);
  console.log("| measurement | routes/s |\n| --- | ---: |");
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}

await main();
process.exit(0);
