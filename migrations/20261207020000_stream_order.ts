import type { Knex } from "knex";

/**
 * The order of a worker's streams. Every stream is numbered from one sequence when its upgrade
 * is accepted, before the worker can hold it; `workers.stream_seq` is the number of the newest
 * stream whose start or end was recorded. A start or end of an older stream changes nothing, so
 * the row ends up describing the worker's newest stream whatever order instances' writes land in.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("CREATE SEQUENCE worker_stream_seq AS bigint");
  await knex.raw("ALTER TABLE workers ADD COLUMN stream_seq bigint NOT NULL DEFAULT 0");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("ALTER TABLE workers DROP COLUMN stream_seq");
  await knex.raw("DROP SEQUENCE worker_stream_seq");
}
