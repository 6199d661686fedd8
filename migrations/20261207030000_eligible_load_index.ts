import type { Knex } from "knex";

/**
 * The eligible workers in the order placement prefers them: fewest routes first, ties by name
 * in byte order. A route creation reads the few least loaded of them by this index instead of
 * every eligible worker, so its cost follows the request, not the size of the fleet. The
 * predicate is the one the candidates' read writes out (src/placement/repository.ts).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`CREATE INDEX workers_eligible_load_index ON workers (route_count, name COLLATE "C")
    WHERE status IN ('registered', 'alive')`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw("DROP INDEX workers_eligible_load_index");
}
