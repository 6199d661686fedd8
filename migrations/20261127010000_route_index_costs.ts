import type { Knex } from "knex";

/**
 * What each route write costs the indexes of `routes`:
 *
 * - The labels' GIN index no longer collects new entries in a pending list: with `fastupdate`
 *   on, the write that finds the list full merges all of it, and pays tens of milliseconds while
 *   holding the routing lock. Off, every write pays its own small share.
 * - `endpoint_id`, `user_id` and `project_id` are indexed only where set: most routes have none
 *   of them, and a lookup by one of them (`=`) still uses the partial index.
 */
const OPTIONAL_COLUMNS = ["endpoint_id", "user_id", "project_id"] as const;

export async function up(knex: Knex): Promise<void> {
  await knex.raw("ALTER INDEX routes_labels_gin SET (fastupdate = off)");
  for (const column of OPTIONAL_COLUMNS) {
    await knex.raw(`DROP INDEX IF EXISTS routes_${column}_index`);
    await knex.raw(
      `CREATE INDEX routes_${column}_index ON routes (${column}) WHERE ${column} IS NOT NULL`,
    );
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("ALTER INDEX routes_labels_gin RESET (fastupdate)");
  for (const column of OPTIONAL_COLUMNS) {
    await knex.raw(`DROP INDEX IF EXISTS routes_${column}_index`);
    await knex.raw(`CREATE INDEX routes_${column}_index ON routes (${column})`);
  }
}
