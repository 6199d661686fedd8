import type { Knex } from "knex";
import * as initial from "../../migrations/20261127000000_initial.js";
import * as routeIndexCosts from "../../migrations/20261127010000_route_index_costs.js";
import * as freePortRanges from "../../migrations/20261207000000_free_port_ranges.js";
import * as backendai from "../../migrations/20261207010000_backendai.js";
import * as streamOrder from "../../migrations/20261207020000_stream_order.js";
import * as eligibleLoadIndex from "../../migrations/20261207030000_eligible_load_index.js";

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

// A static list: knex's directory loader cannot import .ts under plain Node or vitest, and the
// names recorded in knex_migrations must not depend on whether the code was compiled.
const migrations: ReadonlyArray<[string, Migration]> = [
  ["20261127000000_initial", initial],
  ["20261127010000_route_index_costs", routeIndexCosts],
  ["20261207000000_free_port_ranges", freePortRanges],
  ["20261207010000_backendai", backendai],
  ["20261207020000_stream_order", streamOrder],
  ["20261207030000_eligible_load_index", eligibleLoadIndex],
];

export const migrationSource: Knex.MigrationSource<[string, Migration]> = {
  getMigrations: () => Promise.resolve([...migrations]),
  getMigrationName: ([name]) => name,
  getMigration: ([, migration]) => Promise.resolve(migration),
};

export const latestMigration = migrations[migrations.length - 1]![0];
