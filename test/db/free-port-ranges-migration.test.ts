import { randomUUID } from "node:crypto";
import type { Knex } from "knex";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.js";
import { migrationSource } from "../../src/db/migration-source.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

let testDb: TestDatabase;
let db: Database;

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = await testDb.open();
});
afterAll(() => testDb?.drop());

const now = new Date("2026-12-07T12:00:00Z");

async function insertWorker(
  knex: Knex,
  name: string,
  range: [number, number] | null,
): Promise<string> {
  const id = randomUUID();
  await knex("workers").insert({
    id,
    name,
    advertised_host: `${name}.example.com`,
    frontend_mode: range ? "port" : "wildcard",
    port_lo: range?.[0] ?? null,
    port_hi: range?.[1] ?? null,
    wildcard_domain: range ? null : `${name}.apps.test`,
    protocols: ["http"],
    modes: ["interactive"],
    status: "alive",
    liveness_since: now,
    registered_at: now,
    updated_at: now,
  });
  return id;
}

/** Routes on `ports` of the worker, and every other port of `range` as a row of free_ports. */
async function holdPorts(knex: Knex, workerId: string, range: [number, number], ports: number[]) {
  for (const port of ports) {
    await knex("routes").insert({
      id: randomUUID(),
      session_id: `s-${port}`,
      app: "jupyter",
      protocol: "http",
      mode: "interactive",
      upstreams: JSON.stringify([{ host: "10.0.0.5", port: 8888, weight: 1 }]),
      worker_id: workerId,
      port,
      version: 1,
      request_hash: "x",
      created_at: now,
      updated_at: now,
    });
  }
  await knex("workers").where({ id: workerId }).update({ route_count: ports.length });
  await knex.raw(
    `INSERT INTO free_ports (worker_id, port)
      SELECT ?, p FROM generate_series(?::int, ?::int) p WHERE p <> ALL(?::int[])`,
    [workerId, range[0], range[1], ports],
  );
}

async function freePortRows(knex: Knex): Promise<string[]> {
  const rows = (await knex("free_ports").orderBy(["worker_id", "port"])) as Array<{
    worker_id: string;
    port: number;
  }>;
  return rows.map((r) => `${r.worker_id}:${r.port}`);
}

/** Undoes migrations, newest first, until the one that made `workers.free_port_ranges` is undone. */
async function migrateDownThroughFreePortRanges(knex: Knex): Promise<void> {
  while (await knex.schema.hasColumn("workers", "free_port_ranges")) {
    await knex.migrate.down({ migrationSource });
  }
}

describe("migration 20261207000000_free_port_ranges on a populated database", () => {
  it("folds free_ports rows into each worker's ranges, and back", async () => {
    const { knex } = db;
    // Back to the schema before it, with workers and routes in that schema's shape.
    await migrateDownThroughFreePortRanges(knex);
    expect(await knex.schema.hasTable("free_ports")).toBe(true);
    const fragmented = await insertWorker(knex, "fragmented", [10200, 10209]);
    await holdPorts(knex, fragmented, [10200, 10209], [10200, 10203, 10204]);
    const full = await insertWorker(knex, "full", [20000, 20001]);
    await holdPorts(knex, full, [20000, 20001], [20000, 20001]);
    const wide = await insertWorker(knex, "wide", [30000, 49999]);
    await holdPorts(knex, wide, [30000, 49999], []);
    const wildcard = await insertWorker(knex, "wildcard", null);
    const rowsBefore = await freePortRows(knex);
    expect(rowsBefore).toHaveLength(7 + 20_000);

    await knex.migrate.latest({ migrationSource });
    expect(await knex.schema.hasTable("free_ports")).toBe(false);
    const ranges = Object.fromEntries(
      (
        (await knex("workers").select("id", "free_port_ranges")) as Array<{
          id: string;
          free_port_ranges: string | null;
        }>
      ).map((w) => [w.id, w.free_port_ranges]),
    );
    expect(ranges).toEqual({
      [fragmented]: "{[10201,10203),[10205,10210)}",
      [full]: "{}",
      [wide]: "{[30000,50000)}",
      [wildcard]: null,
    });

    // And down again gives the very rows it started from.
    await migrateDownThroughFreePortRanges(knex);
    expect(await freePortRows(knex)).toEqual(rowsBefore);
    await knex.migrate.latest({ migrationSource });
  });
});
