/**
 * npm run bench:api — route creation over HTTP against the local PostgreSQL, next to what the
 * same PostgreSQL does for the bare transaction. Prints a Markdown table for docs/benchmarks.md.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import knexFactory from "knex";
import {
  benchRoute as route,
  createSingles,
  median,
  registerPortWorker,
  startQuietCoordinator,
} from "./api-fleet.js";
import { cpuShares, type CpuShares } from "./cpu-budget.js";
import { printPortRangeFigures } from "./port-ranges.js";
import { BENCH_TOKENS, drive, machine, processCpuSeconds, request } from "./support.js";

const M = BENCH_TOKENS.MANAGER_TOKENS;
const WORKERS = 10;

async function createBatches(url: string, batches: number, size: number, concurrency: number) {
  let failures = 0;
  const r = await drive(batches, concurrency, async (b) => {
    const res = await request(url, "POST", "/routes/batch", M, {
      routes: Array.from({ length: size }, (_, i) => route("bench", b * size + i)),
    });
    if (res.status !== 201 && failures++ === 0) console.error(res.status, res.body);
  });
  if (failures) throw new Error(`${failures} batches failed`);
  return (batches * size) / r.seconds;
}

/** GET /healthz on the coordinator, 16 in flight: requests/s and its CPU per request. */
async function healthzCpu(
  coordinator: { url: string; child: { pid?: number } },
  total: number,
): Promise<string> {
  const before = await processCpuSeconds(coordinator.child.pid!);
  const r = await drive(total, 16, async () => {
    const res = await request(coordinator.url, "GET", "/healthz", "");
    if (res.status !== 200) throw new Error(`healthz: ${res.status}`);
  });
  const cpuUs = (((await processCpuSeconds(coordinator.child.pid!)) - before) * 1e6) / total;
  return `${Math.round(r.perSecond).toLocaleString("en-US")} /s, ${Math.round(cpuUs)} µs CPU each`;
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
      const body = JSON.stringify(route("bench", i));
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

/**
 * What HTTP alone costs on this machine: a bare node:http server and an Express app with one
 * route, each answering a small JSON document, driven like the creates (keep-alive, 16 in
 * flight). Requests per second and the server's CPU per request: the floor under every row above.
 */
const FLOOR_SERVERS: Record<string, string> = {
  "bare node:http": `const http = require("node:http");
    const server = http.createServer((req, res) => {
      const body = '{"status":"ok"}';
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
      res.end(body);
    });`,
  "Express 5, one route": `const http = require("node:http");
    const app = require("express")();
    app.get("/healthz", (req, res) => res.json({ status: "ok" }));
    const server = http.createServer(app);`,
};

async function httpFloor(name: string, code: string): Promise<[string, string]> {
  const child = spawn(
    process.execPath,
    ["-e", `${code}\nserver.listen(0, "127.0.0.1", () => process.send(server.address().port));`],
    { stdio: ["ignore", "inherit", "inherit", "ipc"] },
  );
  try {
    const port = await new Promise<number>((resolve) =>
      child.once("message", (m) => resolve(Number(m))),
    );
    const url = `http://127.0.0.1:${port}`;
    await drive(3000, 16, async () => void (await request(url, "GET", "/healthz", "")));
    const before = await processCpuSeconds(child.pid!);
    const total = 20_000;
    const r = await drive(total, 16, async () => void (await request(url, "GET", "/healthz", "")));
    const cpuUs = (((await processCpuSeconds(child.pid!)) - before) * 1e6) / total;
    return [
      name,
      `${Math.round(r.perSecond).toLocaleString("en-US")} /s, ${Math.round(cpuUs)} µs CPU each`,
    ];
  } finally {
    child.kill();
  }
}

/** A coordinator on a fresh database with the bench's port-mode workers registered. */
async function startWithWorkers(name: string) {
  const env = await startQuietCoordinator(name);
  for (let w = 0; w < WORKERS; w++) {
    await registerPortWorker(env.coordinator.url, `bench-w${w}`, [10000, 60000], (9 << 8) + w + 1);
  }
  return env;
}

async function main() {
  if (process.argv.includes("--port-ranges")) {
    const where =
      process.env.BENCH_RANGE_EMBEDDED === "1"
        ? "the embedded database"
        : "PostgreSQL at 127.0.0.1:5432";
    console.log(`\nbench:api --port-ranges on ${machine()}, ${where}\n`);
    await printPortRangeFigures();
    return;
  }
  const small = await startWithWorkers("appproxy_bench_api");
  const large = await startWithWorkers("appproxy_bench_api_large");
  const rows: Array<[string, string]> = [];
  const floor: Array<[string, string]> = [];
  const budget: Array<[string, number, CpuShares]> = [];
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  try {
    const { coordinator, db } = small;
    // Warm-up: until the JIT has compiled the request path (a few thousand requests here).
    await createSingles(coordinator.url, 3000, 16);
    rows.push([
      "single creates, concurrency 1 (~3,000 routes in table)",
      fmt(await createSingles(coordinator.url, 1000, 1)),
    ]);
    let c16small = 0;
    const singleCpu = await cpuShares(coordinator.child.pid!, 5000, async () => {
      c16small = await createSingles(coordinator.url, 5000, 16);
    });
    rows.push(["single creates, concurrency 16 (~4,000 routes in table)", fmt(c16small)]);
    budget.push(["single creates, concurrency 16 (per create)", c16small, singleCpu]);
    // Batches fill the second database to 100,000 routes.
    rows.push([
      "batches of 100, concurrency 1",
      fmt(await createBatches(large.coordinator.url, 100, 100, 1)),
    ]);
    let c4batches = 0;
    const batchCpu = await cpuShares(large.coordinator.child.pid!, 40_000, async () => {
      c4batches = await createBatches(large.coordinator.url, 400, 100, 4);
    });
    rows.push(["batches of 100, concurrency 4", fmt(c4batches)]);
    budget.push(["batches of 100, concurrency 4 (per route)", c4batches, batchCpu]);
    await createBatches(large.coordinator.url, 500, 100, 4);
    await createSingles(large.coordinator.url, 3000, 16); // warm-up
    // The fill left autovacuum work behind (100,000 dead free_ports rows, new statistics for
    // routes) that would otherwise run during the rounds and take CPU from them on two cores:
    // done here first, as autovacuum would do it soon after a bulk load. (Without this step the
    // ratio came out 0.77-0.78 in two runs; see docs/benchmarks.md.)
    for (const url of [small.db.url, large.db.url]) {
      const maintenance = knexFactory({ client: "pg", connection: url, pool: { min: 0, max: 1 } });
      await maintenance.raw("VACUUM ANALYZE");
      await maintenance.destroy();
    }
    // This VM's speed drifts by 10-20 % within minutes: small and large table take turns, and
    // the ratio is of the medians.
    const rounds = { small: [] as number[], large: [] as number[] };
    for (let round = 0; round < 5; round++) {
      rounds.small.push(await createSingles(coordinator.url, 2000, 16));
      rounds.large.push(await createSingles(large.coordinator.url, 2000, 16));
    }
    rows.push([
      "single creates, concurrency 16, 5 rounds taking turns: 9,000-19,000 routes (median)",
      fmt(median(rounds.small)),
    ]);
    rows.push(["the same, 100,000-110,000 routes in table (median)", fmt(median(rounds.large))]);
    rows.push([
      "  ratio large/small table",
      (median(rounds.large) / median(rounds.small)).toFixed(2),
    ]);
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
    const healthz = await healthzCpu(coordinator, 20_000);
    floor.push(["the coordinator's GET /healthz", healthz]);
    floor.push([
      "the coordinator's POST /routes, concurrency 16 (from the run above)",
      `${fmt(c16small)} /s, ${Math.round(singleCpu.coordinator)} µs CPU each`,
    ]);
  } finally {
    await small.stop();
    await large.stop();
  }
  for (const [name, code] of Object.entries(FLOOR_SERVERS)) floor.push(await httpFloor(name, code));
  console.log(`\nbench:api on ${machine()}, PostgreSQL at 127.0.0.1:5432\n`);
  console.log("| measurement | routes/s |\n| --- | ---: |");
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
  console.log("\nHTTP alone, 16 in flight (server CPU from /proc):\n");
  console.log("| server | answered, CPU per request |\n| --- | ---: |");
  for (const [k, v] of floor) console.log(`| ${k} | ${v} |`);
  console.log(
    "\nCPU per operation, µs (from /proc; the machine's other work, kernel time not charged to a " +
      'process included, under "rest"), and the rate at which that cost keeps every core busy:\n',
  );
  console.log(
    "| load | routes/s | coordinator | PostgreSQL | load generator | rest | cores busy | ceiling |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const [k, rate, c] of budget) {
    const cells = [c.coordinator, c.postgres, c.generator, c.rest].map((v) => v.toFixed(0));
    const busy = `${(c.busy * 100).toFixed(0)} %`;
    console.log(`| ${k} | ${fmt(rate)} | ${cells.join(" | ")} | ${busy} | ${fmt(c.ceiling)} |`);
  }
  console.log("\nWhat a worker's port range costs:\n");
  await printPortRangeFigures();
}

await main();
process.exit(0);
