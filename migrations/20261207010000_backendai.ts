import type { Knex } from "knex";

/**
 * What the Backend.AI-compatible listener keeps beside the routes:
 *
 * - `backendai_conf_tokens`: the capabilities `POST /v2/conf` hands out, one per session's app
 *   request; a browser presents one at `/v2/proxy/auth`, possibly after a restart.
 * - `backendai_replicas`: the Manager's replicas of an inference endpoint, by its `route_id`, so
 *   that registering and unregistering them one by one can be answered exactly. The endpoint's
 *   route holds them as its upstreams; a row goes with its route.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable("backendai_conf_tokens", (t) => {
    t.uuid("token").primary();
    t.text("session_id").notNullable();
    t.text("kernel_host").notNullable();
    t.integer("kernel_port").notNullable();
    t.text("login_session_token");
    t.text("user_uuid");
    t.text("project_id");
    t.text("access_key").notNullable();
    t.text("domain_name");
    t.timestamp("created_at", { useTz: true }).notNullable();
    t.index(["session_id"]);
  });
  await knex.schema.createTable("backendai_replicas", (t) => {
    t.uuid("endpoint_route_id").notNullable().references("routes.id").onDelete("CASCADE");
    t.uuid("replica_id").notNullable();
    t.text("session_id").notNullable();
    t.text("host").notNullable();
    t.integer("port").notNullable();
    t.integer("weight").notNullable();
    t.bigInteger("position").notNullable();
    t.primary(["endpoint_route_id", "replica_id"]);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists("backendai_replicas");
  await knex.schema.dropTableIfExists("backendai_conf_tokens");
}
