import type { Knex } from "knex";

/**
 * A port-mode worker's free ports become one `int4multirange` on its row instead of one row of
 * `free_ports` per port: a registration writes one value whatever its range (a fleet declaring
 * 20,000 ports per host wrote 20 million rows), and booking or releasing a port rewrites the
 * worker's ranges, whose size grows with their fragments, not with the range.
 *
 * The rows are folded into ranges by runs of consecutive ports (gaps and islands over the
 * primary key's order), so the conversion sorts nothing of its own.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw("ALTER TABLE workers ADD COLUMN free_port_ranges int4multirange");
  await knex.raw(`
    UPDATE workers w SET free_port_ranges = COALESCE(f.ranges, '{}')
    FROM workers x LEFT JOIN (
      SELECT worker_id, range_agg(int4range(lo, hi, '[]')) AS ranges FROM (
        SELECT worker_id, min(port) AS lo, max(port) AS hi FROM (
          SELECT worker_id, port, port - row_number() OVER (PARTITION BY worker_id ORDER BY port) AS run
          FROM free_ports) numbered
        GROUP BY worker_id, run) runs
      GROUP BY worker_id) f ON f.worker_id = x.id
    WHERE w.id = x.id AND w.frontend_mode = 'port'`);
  await knex.schema.dropTable("free_ports");
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.createTable("free_ports", (t) => {
    t.uuid("worker_id").notNullable().references("workers.id").onDelete("CASCADE");
    t.integer("port").notNullable();
    t.primary(["worker_id", "port"]);
  });
  await knex.raw(`
    INSERT INTO free_ports (worker_id, port)
    SELECT w.id, generate_series(lower(r), upper(r) - 1)
    FROM workers w CROSS JOIN LATERAL unnest(w.free_port_ranges) AS r
    WHERE w.free_port_ranges IS NOT NULL`);
  await knex.raw("ALTER TABLE workers DROP COLUMN free_port_ranges");
}
