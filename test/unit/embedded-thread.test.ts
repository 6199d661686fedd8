import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.js";
import { translateDatabaseError } from "../../src/db/pg-errors.js";
import { ScriptSession } from "../../src/db/script.js";
import { createTestDatabase, onPostgres, type TestDatabase } from "../support/database.js";
import { waitFor } from "../support/harness.js";

describe.skipIf(onPostgres())("the embedded database on its own thread", () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await testDb.open();
  });
  afterAll(() => testDb?.drop());

  it("keeps the event loop turning while a query runs", async () => {
    // PGlite's WebAssembly runs a query to its end without yielding: on this thread, no other
    // callback ran until it was done.
    let turns = 0;
    let running = true;
    const turn = () => {
      turns++;
      if (running) setImmediate(turn);
    };
    setImmediate(turn);
    const before = turns;
    await db.knex.raw("SELECT count(*) FROM generate_series(1, 500000)");
    running = false;
    expect(turns - before).toBeGreaterThan(50);
  });

  it("hands back rows, script results and errors with their SQLSTATE and constraint", async () => {
    const rows = await db.knex.raw<{ rows: Array<{ n: number; at: Date; doc: unknown }> }>(
      `SELECT 42::int8 AS n, now() AS at, '{"a": [1]}'::jsonb AS doc`,
    );
    expect(rows.rows[0]).toMatchObject({ n: 42, doc: { a: [1] } });
    expect(rows.rows[0]!.at).toBeInstanceOf(Date);

    const session = await ScriptSession.open(db.knex);
    try {
      expect(await session.run(["SELECT 1 AS one", "SELECT 2 AS two"])).toEqual([
        [{ one: 1 }],
        [{ two: 2 }],
      ]);
    } finally {
      await session.close();
    }

    await db.knex.raw(
      "CREATE TEMP TABLE thread_probe (id int CONSTRAINT thread_probe_pk PRIMARY KEY)",
    );
    await db.knex.raw("INSERT INTO thread_probe VALUES (1)");
    const failure = await db.knex
      .raw("INSERT INTO thread_probe VALUES (1)")
      .catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: "23505", constraint: "thread_probe_pk" });
    expect(translateDatabaseError(failure)).toMatchObject({ status: 409 });
  });

  it("delivers notifications until unlistened", async () => {
    const heard: string[] = [];
    const unlisten = await db.pglite!.listen("thread_probe", (payload) => heard.push(payload));
    await db.knex.raw("SELECT pg_notify('thread_probe', 'one')");
    await waitFor(() => heard.length === 1, 5000, "the notification");
    await unlisten();
    await db.knex.raw("SELECT pg_notify('thread_probe', 'two')");
    await db.knex.raw("SELECT 1");
    expect(heard).toEqual(["one"]);
  });
});
