import type { Knex } from "knex";

/**
 * The whole routing model. Every write to `workers`, `routes` and the change log happens while
 * holding the row lock on `routing_state` (see src/versioning/committer.ts), which is what makes
 * versions gap-free and committed in order across coordinator instances.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("routing_state", (t) => {
    t.integer("id").primary();
    t.bigInteger("version").notNullable().defaultTo(0);
    // Versions at or below this were trimmed from the change log.
    t.bigInteger("changelog_floor").notNullable().defaultTo(0);
  });
  await knex("routing_state").insert({ id: 1, version: 0, changelog_floor: 0 });

  await knex.schema.createTable("workers", (t) => {
    t.uuid("id").primary();
    t.text("name").notNullable().unique();
    t.text("advertised_host").notNullable();
    t.text("frontend_mode").notNullable();
    t.integer("port_lo");
    t.integer("port_hi");
    t.text("wildcard_domain");
    t.integer("wildcard_traffic_port");
    t.specificType("protocols", "text[]").notNullable();
    t.specificType("modes", "text[]").notNullable();
    t.boolean("tls").notNullable().defaultTo(false);
    t.integer("capacity");
    t.jsonb("labels").notNullable().defaultTo("{}");
    t.boolean("dedicated").notNullable().defaultTo(false);
    t.text("status").notNullable();
    t.integer("route_count").notNullable().defaultTo(0);
    t.bigInteger("applied_version").notNullable().defaultTo(0);
    t.jsonb("last_nack");
    t.text("connected_instance");
    t.timestamp("last_seen_at", { useTz: true });
    // The liveness clock: a worker with no live stream since this moment is lost after the grace.
    t.timestamp("liveness_since", { useTz: true }).notNullable();
    t.timestamp("lost_at", { useTz: true });
    t.timestamp("registered_at", { useTz: true }).notNullable();
    t.timestamp("updated_at", { useTz: true }).notNullable();
    t.index(["status"]);
  });

  // One row per free port of a port-mode worker: the lowest free port is an index lookup.
  await knex.schema.createTable("free_ports", (t) => {
    t.uuid("worker_id").notNullable().references("workers.id").onDelete("CASCADE");
    t.integer("port").notNullable();
    t.primary(["worker_id", "port"]);
  });

  await knex.schema.createTable("routes", (t) => {
    t.uuid("id").primary();
    t.text("session_id").notNullable();
    t.text("kernel_id");
    t.text("endpoint_id");
    t.text("app").notNullable();
    t.text("protocol").notNullable();
    t.text("mode").notNullable();
    t.jsonb("upstreams").notNullable();
    t.jsonb("health_check");
    t.jsonb("worker_selector").notNullable().defaultTo("{}");
    t.uuid("worker_id").notNullable().references("workers.id");
    t.integer("port");
    t.text("subdomain");
    // Copied from the worker so that the database itself keeps subdomains unique per domain.
    t.text("wildcard_domain");
    t.boolean("open_to_public").notNullable().defaultTo(false);
    t.jsonb("allowed_client_ips").notNullable().defaultTo("[]");
    t.text("user_id");
    t.text("project_id");
    t.jsonb("labels").notNullable().defaultTo("{}");
    t.timestamp("expires_at", { useTz: true });
    t.timestamp("last_activity_at", { useTz: true });
    t.bigInteger("version").notNullable();
    t.text("request_hash").notNullable();
    t.timestamp("created_at", { useTz: true }).notNullable();
    t.timestamp("updated_at", { useTz: true }).notNullable();
    t.index(["worker_id", "id"]);
    t.index(["session_id"]);
    t.index(["endpoint_id"]);
    t.index(["user_id"]);
    t.index(["project_id"]);
  });
  await knex.raw(
    "CREATE UNIQUE INDEX routes_worker_port_unique ON routes (worker_id, port) WHERE port IS NOT NULL",
  );
  await knex.raw(
    "CREATE UNIQUE INDEX routes_domain_subdomain_unique ON routes (wildcard_domain, subdomain) WHERE subdomain IS NOT NULL",
  );
  await knex.raw("CREATE INDEX routes_labels_gin ON routes USING gin (labels jsonb_path_ops)");
  await knex.raw(
    "CREATE INDEX routes_expires_at ON routes (expires_at) WHERE expires_at IS NOT NULL",
  );

  await knex.schema.createTable("changes", (t) => {
    t.bigInteger("version").primary();
    t.text("kind").notNullable();
    t.timestamp("committed_at", { useTz: true }).notNullable();
  });

  // What each version did to each worker's table; the stream replays it.
  await knex.schema.createTable("change_entries", (t) => {
    t.bigInteger("version").notNullable();
    t.uuid("worker_id").notNullable();
    t.uuid("route_id").notNullable();
    t.text("op").notNullable();
    t.jsonb("route");
    t.primary(["version", "worker_id", "route_id"]);
    t.index(["worker_id", "version"]);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ["change_entries", "changes", "routes", "free_ports", "workers"]) {
    await knex.schema.dropTableIfExists(table);
  }
  await knex.schema.dropTableIfExists("routing_state");
}
